package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Series is one time series of a query_range answer.
type Series struct {
	Labels map[string]string
	Times  []time.Time
	Values []float64
}

// queryRange runs a PromQL range query through Prometheus' HTTP API.
func queryRange(ctx context.Context, base, expr string, start, end time.Time, step time.Duration) ([]Series, error) {
	q := url.Values{}
	q.Set("query", expr)
	q.Set("start", strconv.FormatInt(start.Unix(), 10))
	q.Set("end", strconv.FormatInt(end.Unix(), 10))
	q.Set("step", strconv.FormatFloat(step.Seconds(), 'f', -1, 64))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query_range?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("query %q: read answer: %w", expr, err)
	}
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("query %q: HTTP %d: %w", expr, resp.StatusCode, err)
	}
	if ans.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", expr, ans.Error)
	}
	out := make([]Series, 0, len(ans.Data.Result))
	for _, r := range ans.Data.Result {
		s := Series{Labels: r.Metric}
		for _, v := range r.Values {
			ts, ok1 := v[0].(float64)
			vs, ok2 := v[1].(string)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("query %q: unexpected sample %v", expr, v)
			}
			f, err := strconv.ParseFloat(vs, 64)
			if err != nil {
				return nil, fmt.Errorf("query %q: sample value %q: %w", expr, vs, err)
			}
			s.Times = append(s.Times, time.Unix(0, int64(ts*1e9)))
			s.Values = append(s.Values, f)
		}
		out = append(out, s)
	}
	return out, nil
}
