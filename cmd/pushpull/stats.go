package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/pushpull/pushpull/sdk"
)

// stats prints the statistics of every live server process: a table, or
// the route's JSON with --json.
func stats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	fs.SetOutput(stderr)
	u := fs.String("url", "http://127.0.0.1:9010/server-stat/", "statistics route")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pushpull stats [--url URL] [--json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("stats: unexpected argument %q", fs.Arg(0))
	}
	st, err := sdk.New("", "", sdk.WithStatsURL(*u)).ServerStats(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "PID\tWEBSOCKETS\tPOLLINGS\tCHANNELS\tUPDATED\tPROCESS\t")
	var ws, polls int64
	var channels int
	for _, p := range st {
		updated := time.UnixMilli(p.Date).UTC().Format(time.RFC3339)
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\t\n", p.PID, p.WebSockets, p.Pollings, p.Channels, updated, p.ProcessUniqueID)
		ws, polls, channels = ws+p.WebSockets, polls+p.Pollings, channels+p.Channels
	}
	if len(st) > 1 {
		fmt.Fprintf(tw, "total\t%d\t%d\t%d\t\t%d processes\t\n", ws, polls, channels, len(st))
	}
	return tw.Flush()
}
