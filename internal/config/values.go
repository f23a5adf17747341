package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The flag.Value implementations below write straight into Config fields, so
// that the command line, the environment and the config file all go through
// the same parsing and error messages.

// kind tells the config-file loader how to turn a YAML value into flag text.
type kind int

const (
	kindString kind = iota
	kindBool
	kindInt
	kindDuration   // Go duration; a bare YAML number is nanoseconds (etcd)
	kindMillis     // integer milliseconds, or a Go duration
	kindSeconds    // integer seconds, or a Go duration
	kindList       // comma-separated; a YAML list is joined with commas
	kindIgnored    // legacy flag, accepted and ignored
	kindSize       // bytes, optionally with a unit
	kindFloat      // decimal number
	kindFeatureSet // key=bool pairs
)

type boolValue struct{ p *bool }

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("expected true or false")
	}
	*v.p = b
	return nil
}
func (v boolValue) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}
func (v boolValue) IsBoolFlag() bool { return true }

type stringValue struct{ p *string }

func (v stringValue) Set(s string) error { *v.p = s; return nil }
func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// choiceValue accepts one of a fixed set of strings.
type choiceValue struct {
	p       *string
	choices []string
}

func (v choiceValue) Set(s string) error {
	if !slices.Contains(v.choices, s) {
		return fmt.Errorf("must be one of %s", quoteList(v.choices))
	}
	*v.p = s
	return nil
}
func (v choiceValue) String() string { return stringValue{v.p}.String() }

// selectiveStringsValue is etcd's flags.SelectiveStringsValue: a
// comma-separated list whose every item is one of valids. Each Set adds
// to the list, which is kept sorted; an item outside valids is refused
// with etcd's message, naming the item.
type selectiveStringsValue struct {
	p      *string
	valids []string
}

func (v selectiveStringsValue) Set(s string) error {
	items := strings.Split(s, ",")
	for _, it := range items {
		if !slices.Contains(v.valids, it) {
			return fmt.Errorf("invalid value %q", it)
		}
	}
	var all []string
	if *v.p != "" {
		all = strings.Split(*v.p, ",")
	}
	all = append(all, items...)
	slices.Sort(all)
	*v.p = strings.Join(all, ",")
	return nil
}
func (v selectiveStringsValue) String() string { return stringValue{v.p}.String() }

// intValue stores any integer type; bounds are checked before the store.
type intValue[T ~int | ~int64 | ~uint | ~uint32 | ~uint64] struct {
	p        *T
	min, max float64
}

func newInt[T ~int | ~int64 | ~uint | ~uint32 | ~uint64](p *T) intValue[T] {
	var zero T
	lo, hi := float64(math.MinInt64), float64(math.MaxInt64)
	switch any(zero).(type) {
	case int:
		lo, hi = math.MinInt, math.MaxInt
	case uint, uint64:
		lo, hi = 0, math.MaxUint64
	case uint32:
		lo, hi = 0, math.MaxUint32
	}
	return intValue[T]{p: p, min: lo, max: hi}
}

// newNonNeg is newInt for signed fields that etcd declares unsigned.
func newNonNeg[T ~int | ~int64](p *T) intValue[T] {
	v := newInt(p)
	v.min = 0
	return v
}

func (v intValue[T]) Set(s string) error {
	s = strings.TrimSpace(s)
	if v.min >= 0 {
		n, err := strconv.ParseUint(s, 0, 64)
		if err != nil || float64(n) > v.max {
			return fmt.Errorf("expected a whole number between 0 and %.0f", v.max)
		}
		*v.p = T(n)
		return nil
	}
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil || float64(n) < v.min || float64(n) > v.max {
		return errors.New("expected a whole number")
	}
	*v.p = T(n)
	return nil
}
func (v intValue[T]) String() string {
	if v.p == nil {
		return "0"
	}
	return fmt.Sprint(*v.p)
}

type floatValue struct{ p *float64 }

func (v floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return errors.New("expected a number")
	}
	*v.p = f
	return nil
}
func (v floatValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}

// durationValue is a Go duration ("5s", "2h"), as etcd's duration flags.
type durationValue struct{ p *time.Duration }

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New(`expected a duration such as "500ms", "5s" or "2h"`)
	}
	*v.p = d
	return nil
}
func (v durationValue) String() string {
	if v.p == nil {
		return "0s"
	}
	return v.p.String()
}

// unitDuration is a whole number of units (etcd's heartbeat-interval and
// election-timeout are milliseconds, auth-token-ttl is seconds); a Go
// duration string is accepted as well.
type unitDuration struct {
	p    *time.Duration
	unit time.Duration
}

func (v unitDuration) Set(s string) error {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n > uint64(math.MaxInt64/int64(v.unit)) {
			return errors.New("value out of range")
		}
		*v.p = time.Duration(n) * v.unit
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("expected a whole number of %s", unitName(v.unit))
	}
	*v.p = d
	return nil
}
func (v unitDuration) String() string {
	if v.p == nil {
		return "0"
	}
	if *v.p%v.unit == 0 {
		return strconv.FormatInt(int64(*v.p/v.unit), 10)
	}
	return v.p.String()
}

func unitName(u time.Duration) string {
	if u == time.Second {
		return "seconds"
	}
	return "milliseconds"
}

// sizeValue is a byte count: a whole number, optionally with a unit
// (KB, MB, GB, KiB, MiB, GiB; also k, m, g as powers of 1024).
type sizeValue struct {
	p             *int64
	allowNegative bool
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

func (v sizeValue) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	num := s
	for _, u := range sizeUnits {
		if len(s) > len(u.suffix) && strings.EqualFold(s[len(s)-len(u.suffix):], u.suffix) {
			mult, num = u.mult, strings.TrimSpace(s[:len(s)-len(u.suffix)])
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || (n < 0 && !v.allowNegative) {
		return errors.New(`expected a number of bytes such as "1572864" or "2GiB"`)
	}
	if n != 0 && (n > math.MaxInt64/mult || n < math.MinInt64/mult) {
		return errors.New("value out of range")
	}
	*v.p = n * mult
	return nil
}
func (v sizeValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatInt(*v.p, 10)
}

// listValue is a comma-separated list. unique sorts and removes duplicates
// (etcd's UniqueStringsValue); otherwise order is kept (StringsValue).
type listValue struct {
	p      *[]string
	unique bool
}

func (v listValue) Set(s string) error {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	if v.unique {
		sort.Strings(out)
		out = slices.Compact(out)
	}
	*v.p = out
	return nil
}
func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

// urlsValue is a comma-separated list of URLs, checked as etcd checks them
// (scheme http/https/unix/unixs, host:port, no path), sorted, de-duplicated.
// An empty string means no URLs.
type urlsValue struct{ p *[]url.URL }

func (v urlsValue) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		*v.p = nil
		return nil
	}
	us, err := parseURLs(s)
	if err != nil {
		return err
	}
	*v.p = us
	return nil
}
func (v urlsValue) String() string {
	if v.p == nil {
		return ""
	}
	return urlsString(*v.p)
}

func urlsString(us []url.URL) string {
	ss := make([]string, len(us))
	for i := range us {
		ss[i] = us[i].String()
	}
	return strings.Join(ss, ",")
}

func parseURLs(s string) ([]url.URL, error) {
	var out []url.URL
	seen := map[string]bool{}
	for _, in := range strings.Split(s, ",") {
		in = strings.TrimSpace(in)
		u, err := parseURL(in)
		if err != nil {
			return nil, err
		}
		if seen[u.String()] {
			continue
		}
		seen[u.String()] = true
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

func parseURL(in string) (*url.URL, error) {
	u, err := url.Parse(in)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q", in)
	}
	switch u.Scheme {
	case "http", "https":
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf(`URL address does not have the form "host:port": %s`, in)
		}
		if u.Path != "" {
			return nil, fmt.Errorf("URL must not contain a path: %s", in)
		}
	case "unix", "unixs":
	default:
		return nil, fmt.Errorf("URL scheme must be http, https, unix, or unixs: %s", in)
	}
	return u, nil
}

// ignoredValue is a flag etcd once had and now accepts and ignores.
type ignoredValue struct {
	name string
	c    *Config
}

func (v ignoredValue) Set(string) error {
	v.c.warnf("flag is no longer supported - ignoring: --%s", v.name)
	return nil
}
func (v ignoredValue) String() string   { return "" }
func (v ignoredValue) IsBoolFlag() bool { return true }

// deprecatedValue wraps a value whose flag still works but is on its way out.
type deprecatedValue struct {
	inner interface {
		Set(string) error
		String() string
	}
	c   *Config
	msg string
}

func (v deprecatedValue) Set(s string) error {
	if err := v.inner.Set(s); err != nil {
		return err
	}
	v.c.warnf("%s", v.msg)
	return nil
}
func (v deprecatedValue) String() string { return v.inner.String() }

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
