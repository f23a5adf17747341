package main

import (
	"context"
	"flag"
	"fmt"
	"image/color"
	"os"
	"time"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		dashPath = flag.String("dashboard", "deploy/grafana/metastore-dashboard.json", "Grafana dashboard JSON to draw")
		promURL  = flag.String("prometheus", "http://127.0.0.1:9090", "Prometheus base URL")
		startU   = flag.Int64("start", 0, "start of the window, Unix seconds (required)")
		endU     = flag.Int64("end", 0, "end of the window, Unix seconds (required)")
		points   = flag.Int("points", 200, "samples per series over the window")
		scrape   = flag.Duration("scrape-interval", time.Second, "Prometheus' scrape interval (for $__rate_interval)")
		width    = flag.Int("width", 1600, "picture width in pixels")
		out      = flag.String("out", "docs/img/dashboard.png", "PNG to write")
	)
	flag.Parse()
	if *startU <= 0 || *endU <= *startU || *points < 2 {
		return fmt.Errorf("need -start < -end (Unix seconds) and -points >= 2")
	}
	d, err := loadDashboard(*dashPath)
	if err != nil {
		return err
	}
	start, end := time.Unix(*startU, 0), time.Unix(*endU, 0)
	step := max(end.Sub(start)/time.Duration(*points-1), time.Second).Round(time.Second)
	rate := rateInterval(step, *scrape)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	results := make([]Result, len(d.Panels))
	rows := 0
	for i, p := range d.Panels {
		rows = max(rows, p.GridPos.Y+p.GridPos.H)
		for _, t := range p.Targets {
			ss, err := queryRange(ctx, *promURL, expand(t.Expr, rate), start, end, step)
			if err != nil {
				return fmt.Errorf("panel %q: %w", p.Title, err)
			}
			for _, s := range ss {
				results[i].Names = append(results[i].Names, legend(t.LegendFormat, s.Labels))
				results[i].Series = append(results[i].Series, s)
			}
		}
	}

	const header = 40 // the dashboard's title above the grid
	w, h := float64(*width), float64(rows*rowUnit+header)
	img := vgimg.NewWith(vgimg.UseWH(vg.Length(w), vg.Length(h)), vgimg.UseDPI(72), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	dc.FillText(bold(18, textColor), vg.Point{X: margin + 2, Y: vg.Length(h) - 28},
		fmt.Sprintf("%s — %s to %s UTC", d.Title, start.UTC().Format("2006-01-02 15:04:05"), end.UTC().Format("15:04:05")))
	grid := draw.Crop(dc, 0, 0, 0, -header)
	gh := h - header
	for i, p := range d.Panels {
		c := panelRect(grid, p.GridPos, w, gh)
		switch p.Type {
		case "row":
			drawRow(c, p)
		case "stat":
			drawStat(c, p, results[i])
		default:
			if err := drawTimeseries(c, p, results[i], start, end, step); err != nil {
				return err
			}
		}
	}
	f, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("create %s: %w", *out, err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", *out, err)
	}
	return f.Close()
}
