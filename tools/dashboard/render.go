package main

import (
	"fmt"
	"image/color"
	"math"
	"strings"
	"time"

	stdfont "golang.org/x/image/font"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Grid geometry, in pixels (the canvas runs at 72 DPI, so one point is
// one pixel): Grafana's row unit is 30 px; margin separates panels.
const (
	rowUnit = 30
	margin  = 4
)

// palette is Grafana's classic series palette.
var palette = []color.Color{
	rgb(0x7EB26D), rgb(0xEAB839), rgb(0x6ED0E0), rgb(0xEF843C), rgb(0xE24D42),
	rgb(0x1F78C1), rgb(0xBA43A9), rgb(0x705DA0), rgb(0x508642), rgb(0xCCA300),
}

func rgb(v uint32) color.Color {
	return color.RGBA{R: uint8(v >> 16), G: uint8(v >> 8), B: uint8(v), A: 0xff}
}

var (
	borderColor = rgb(0xD0D0D0)
	textColor   = rgb(0x202020)
	dimColor    = rgb(0x707070)
)

func style(size float64, c color.Color) draw.TextStyle {
	f := plot.DefaultFont
	f.Size = vg.Length(size)
	return text.Style{Color: c, Font: f, Handler: plot.DefaultTextHandler}
}

func bold(size float64, c color.Color) draw.TextStyle {
	s := style(size, c)
	s.Font.Weight = stdfont.WeightBold
	return s
}

// Result is what one panel's queries returned, each series named.
type Result struct {
	Names  []string
	Series []Series
}

// panelRect is the canvas area of a panel at grid position g on a canvas
// width px wide and height px high.
func panelRect(dc draw.Canvas, g GridPos, width, height float64) draw.Canvas {
	col := width / 24
	left := float64(g.X)*col + margin
	right := float64(g.X+g.W)*col - margin
	top := height - float64(g.Y*rowUnit) - margin
	bottom := height - float64((g.Y+g.H)*rowUnit) + margin
	return draw.Crop(dc, vg.Length(left), vg.Length(right-width), vg.Length(bottom), vg.Length(top-height))
}

func frame(c draw.Canvas) {
	r := c.Rectangle
	c.StrokeLines(draw.LineStyle{Color: borderColor, Width: 1}, []vg.Point{
		r.Min, {X: r.Max.X, Y: r.Min.Y}, r.Max, {X: r.Min.X, Y: r.Max.Y}, r.Min,
	})
}

// drawRow draws a row panel: its title as a heading.
func drawRow(c draw.Canvas, p Panel) {
	c.FillText(bold(15, textColor), vg.Point{X: c.Min.X + 2, Y: c.Min.Y + 6}, p.Title)
}

// drawTitle draws a panel's title and returns the area below it.
func drawTitle(c draw.Canvas, title string) draw.Canvas {
	c.FillText(bold(12, textColor), vg.Point{X: c.Min.X + 8, Y: c.Max.Y - 18}, title)
	return draw.Crop(c, 0, 0, 0, -24)
}

// drawStat draws a stat panel: each series' last value, large, with its
// name below.
func drawStat(c draw.Canvas, p Panel, r Result) {
	frame(c)
	body := drawTitle(c, p.Title)
	if len(r.Series) == 0 {
		noData(body)
		return
	}
	w := (body.Max.X - body.Min.X) / vg.Length(len(r.Series))
	big := bold(30, palette[0])
	big.XAlign = text.XCenter
	small := style(10, dimColor)
	small.XAlign = text.XCenter
	for i, s := range r.Series {
		x := body.Min.X + w*vg.Length(i) + w/2
		mid := (body.Min.Y + body.Max.Y) / 2
		v := math.NaN()
		if n := len(s.Values); n > 0 {
			v = s.Values[n-1]
		}
		big.Color = palette[i%len(palette)]
		body.FillText(big, vg.Point{X: x, Y: mid}, formatValue(v, p.Field.Defaults.Unit))
		body.FillText(small, vg.Point{X: x, Y: mid - 22}, r.Names[i])
	}
}

func noData(c draw.Canvas) {
	s := style(12, dimColor)
	s.XAlign, s.YAlign = text.XCenter, text.YCenter
	c.FillText(s, vg.Point{X: (c.Min.X + c.Max.X) / 2, Y: (c.Min.Y + c.Max.Y) / 2}, "No data")
}

// drawTimeseries draws a time-series panel: one line per series over
// [start, end], the legend below the plot.
func drawTimeseries(c draw.Canvas, p Panel, r Result, start, end time.Time, step time.Duration) error {
	frame(c)
	body := drawTitle(c, p.Title)
	if len(r.Series) == 0 {
		noData(body)
		return nil
	}
	legendArea := draw.Crop(body, 8, -8, 4, 0)
	legendRows := layoutLegend(legendArea, r.Names, false)
	layoutLegend(legendArea, r.Names, true)
	plotArea := draw.Crop(body, 4, -8, vg.Length(legendRows*13+8), 0)

	pl := plot.New()
	pl.BackgroundColor = color.Transparent
	pl.X.Min, pl.X.Max = float64(start.Unix()), float64(end.Unix())
	format := "15:04"
	if end.Sub(start) < 15*time.Minute {
		format = "15:04:05"
	}
	pl.X.Tick.Marker = plot.TimeTicks{Format: format}
	pl.Y.Tick.Marker = unitTicks{unit: p.Field.Defaults.Unit}
	for _, a := range []*plot.Axis{&pl.X, &pl.Y} {
		a.Tick.Label.Font.Size = 9
		a.Tick.Label.Color = dimColor
		a.Color = borderColor
		a.Tick.Color = borderColor
	}
	pl.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, s := range r.Series {
		for _, run := range runs(s, step) {
			for _, xy := range run {
				lo, hi = math.Min(lo, xy.Y), math.Max(hi, xy.Y)
			}
			line, err := plotter.NewLine(run)
			if err != nil {
				return fmt.Errorf("panel %q: %w", p.Title, err)
			}
			line.Color = palette[i%len(palette)]
			line.Width = 1.5
			pl.Add(line)
		}
	}
	if math.IsInf(lo, 1) {
		noData(plotArea)
		return nil
	}
	// Grafana starts non-negative data at 0 and gives a flat series room.
	pl.Y.Min = math.Min(0, lo)
	pl.Y.Max = hi
	if pl.Y.Max <= pl.Y.Min {
		pl.Y.Max = pl.Y.Min + 1
	}
	pl.Y.Max += (pl.Y.Max - pl.Y.Min) * 0.05
	pl.Draw(plotArea)
	return nil
}

// runs splits a series where it has no value (NaN, or no sample for more
// than two steps), so that, as in Grafana, a gap is not drawn over.
func runs(s Series, step time.Duration) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	var last time.Time
	for j, v := range s.Values {
		t := s.Times[j]
		if math.IsNaN(v) || math.IsInf(v, 0) || (len(cur) > 0 && t.Sub(last) > 2*step) {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
		}
		cur = append(cur, plotter.XY{X: float64(t.UnixNano()) / 1e9, Y: v})
		last = t
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// layoutLegend lays the series names out in rows across c's width from
// its bottom up, each after a colour swatch; it draws them if draw is
// set, and returns the number of rows.
func layoutLegend(c draw.Canvas, names []string, drawIt bool) int {
	s := style(9, textColor)
	const swatch, gap, lineH = 10, 12, 13
	width := c.Max.X - c.Min.X
	// Rows are filled top-down; count them first so that the last one
	// sits at the bottom.
	type item struct {
		row int
		x   vg.Length
	}
	items := make([]item, len(names))
	row, x := 0, vg.Length(0)
	for i, n := range names {
		w := swatch + 4 + s.Width(n) + gap
		if x > 0 && x+w > width {
			row, x = row+1, 0
		}
		items[i] = item{row, x}
		x += w
	}
	rows := row + 1
	if !drawIt {
		return rows
	}
	for i, n := range names {
		y := c.Min.Y + vg.Length((rows-1-items[i].row)*lineH)
		x0 := c.Min.X + items[i].x
		c.StrokeLine2(draw.LineStyle{Color: palette[i%len(palette)], Width: 3}, x0, y+3, x0+swatch, y+3)
		c.FillText(s, vg.Point{X: x0 + swatch + 4, Y: y}, n)
	}
	return rows
}

// unitTicks are plot.DefaultTicks labelled in the panel's unit.
type unitTicks struct{ unit string }

func (u unitTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = formatValue(ts[i].Value, u.unit)
		}
	}
	return ts
}

// formatValue writes v in a Grafana unit: bytes (IEC), s (seconds, shown
// in ms below one), ops and reqps (per second), short (SI suffixes).
func formatValue(v float64, unit string) string {
	if math.IsNaN(v) {
		return "–"
	}
	switch unit {
	case "bytes":
		return iec(v)
	case "s":
		if math.Abs(v) < 1 && v != 0 {
			return trim(v*1000) + " ms"
		}
		return trim(v) + " s"
	case "ops":
		return si(v) + " ops/s"
	case "reqps":
		return si(v) + " req/s"
	default:
		return si(v)
	}
}

func iec(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for math.Abs(v) >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return trim(v) + " " + units[i]
}

func si(v float64) string {
	units := []string{"", "K", "M", "G"}
	i := 0
	for math.Abs(v) >= 1000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return trim(v) + units[i]
}

// trim writes v with at most two decimals and no trailing zeros.
func trim(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}
