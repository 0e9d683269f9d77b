package bench

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
)

func TestPlotSweep(t *testing.T) {
	sw := &Sweep{Points: []SweepPoint{
		sweepPoint(100, KindPushpull, []any{&DeliveryResult{Latency: Latency{P50: 0.4, P90: 0.8, P99: 1.5}}}),
		sweepPoint(100, KindNchan, []any{&DeliveryResult{Latency: Latency{P50: 0.3, P90: 0.7, P99: 1.2}}}),
		sweepPoint(1000, KindPushpull, []any{&DeliveryResult{Latency: Latency{P50: 2.5, P90: 4, P99: 6}}, &DeliveryResult{Latency: Latency{P50: 2.7, P90: 4.2, P99: 7}}}),
		sweepPoint(1000, KindNchan, nil), // no run finished
	}}
	var b bytes.Buffer
	if err := PlotSweep(&b, sw); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML, a line per server and percentile that has points.
	dec := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	lines := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("not well-formed: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	if lines != 6 {
		t.Errorf("%d lines, want 6 (2 servers x 3 percentiles)", lines)
	}
	if sw.Points[2].P50.Median != 2.6 || sw.Points[2].P50.N != 2 {
		t.Errorf("the median of two runs: %+v", sw.Points[2].P50)
	}
	var table bytes.Buffer
	WriteSweep(&table, sw)
	if !strings.Contains(table.String(), "1000") || !strings.Contains(table.String(), "nchan") {
		t.Errorf("table:\n%s", table.String())
	}
	if err := PlotSweep(&b, &Sweep{}); err == nil {
		t.Error("an empty sweep plotted")
	}
}
