package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/pushpull/pushpull/internal/wsclient"
	"github.com/pushpull/pushpull/protocol"
)

// received is what subscribe prints for each message, one JSON object a
// line.
type received struct {
	MID      string          `json:"mid"`
	Channel  string          `json:"channel"`
	ModuleID string          `json:"module_id,omitempty"`
	Command  string          `json:"command,omitempty"`
	Params   json.RawMessage `json:"params,omitempty"`
}

// subscribe reads channels as a text-mode client does, over WebSocket or
// long polling, and prints each message until ctx ends (SIGINT) or --count
// messages have come. When the server closes the connection (a restart)
// it reconnects and resumes after the last mid it printed.
func subscribe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("subscribe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	u := fs.String("url", "", "subscribe route (default ws://127.0.0.1:8010/bitrix/subws/, or http://127.0.0.1:8010/bitrix/sub/ with --lp)")
	var channels listFlag
	fs.Var(&channels, "channel", "channel `ID`, signed, or unsigned with --key; repeatable or a comma list")
	key := fs.String("key", os.Getenv("PUSHPULL_KEY"), "security key to sign the channel ids with (env PUSHPULL_KEY)")
	algo := fs.String("algo", "sha1", "signature algorithm, with --key")
	mid := fs.String("mid", "", "resume after this message id")
	lp := fs.Bool("lp", false, "use long polling instead of WebSocket")
	count := fs.Int("count", 0, "exit after this many messages (0: run until interrupted)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pushpull subscribe --channel ID [--key KEY] [--url URL] [--mid MID] [--lp] [--count N]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("subscribe: unexpected argument %q", fs.Arg(0))
	}
	if len(channels) == 0 {
		fs.Usage()
		return errors.New("subscribe: no --channel")
	}
	if *mid != "" && !protocol.ValidMID(*mid) {
		return fmt.Errorf("subscribe: --mid %q is not a message id (26 digits)", *mid)
	}
	if *key != "" {
		signer, err := protocol.NewSigner(*key, *algo)
		if err != nil {
			return err
		}
		for i, c := range channels {
			if !strings.Contains(c, ".") {
				channels[i] = signer.SignChannel(c)
			}
		}
	}
	if *u == "" {
		*u = "ws://127.0.0.1:8010/bitrix/subws/"
		if *lp {
			*u = "http://127.0.0.1:8010/bitrix/sub/"
		}
	}
	s := &subscriber{base: *u, channels: strings.Join(channels, "/"), mid: *mid, left: *count, out: json.NewEncoder(stdout)}
	var err error
	if *lp {
		err = s.poll(ctx)
	} else {
		err = s.websocket(ctx)
	}
	if errors.Is(err, errEnough) || ctx.Err() != nil {
		return nil
	}
	return err
}

// errEnough ends a subscription that printed --count messages.
var errEnough = errors.New("enough messages")

type subscriber struct {
	base     string
	channels string // CHANNEL_ID
	mid      string // the last mid printed: where to resume
	left     int    // messages still to print; 0: no limit
	out      *json.Encoder
}

func (s *subscriber) url() string {
	q := url.Values{"CHANNEL_ID": {s.channels}, "revision": {"19"}}
	if s.mid != "" {
		q.Set("mid", s.mid)
	}
	sep := "?"
	if strings.Contains(s.base, "?") {
		sep = "&"
	}
	return s.base + sep + q.Encode()
}

// print writes each message of data, a run of text envelopes.
func (s *subscriber) print(data []byte) error {
	envs, err := parseEnvelopes(data)
	if err != nil {
		return err
	}
	for _, e := range envs {
		r := received{MID: e.MID, Channel: e.Channel}
		var body struct {
			ModuleID string          `json:"module_id"`
			Command  string          `json:"command"`
			Params   json.RawMessage `json:"params"`
		}
		if json.Unmarshal(e.Text, &body) == nil {
			r.ModuleID, r.Command, r.Params = body.ModuleID, body.Command, body.Params
		} else {
			// Not a command: print the text as it came.
			r.Params = e.Text
		}
		if err := s.out.Encode(r); err != nil {
			return err
		}
		if e.MID != "" {
			s.mid = e.MID
		}
		if s.left > 0 {
			if s.left--; s.left == 0 {
				return errEnough
			}
		}
	}
	return nil
}

// retryDelay is the pause before reconnecting after the server ended a
// connection.
const retryDelay = time.Second

func (s *subscriber) websocket(ctx context.Context) error {
	for {
		err := s.websocketOnce(ctx)
		var refused ws.StatusError
		var closed wsutil.ClosedError
		if errors.As(err, &closed) && closed.Code == protocol.CloseWrongChannel {
			// The server upgrades a bad channel id and closes at once.
			return fmt.Errorf("subscribe: the server refused the channel: %d %s", closed.Code, closed.Reason)
		}
		if errors.As(err, &refused) || errors.Is(err, errEnough) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retryDelay):
		}
	}
}

func (s *subscriber) websocketOnce(ctx context.Context) error {
	conn, br, _, err := ws.Dial(ctx, s.url())
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() {
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = wsutil.WriteClientMessage(conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
		_ = conn.Close()
	})
	defer stop()
	rw := wsclient.Stream(conn, br) // ReadServerData answers pings on it
	for {
		data, op, err := wsutil.ReadServerData(rw)
		if err != nil {
			return err
		}
		if op != ws.OpText {
			continue
		}
		if err := s.print(data); err != nil {
			return err
		}
	}
}

// pollTimeout bounds one long poll; the server answers 304 within its
// polling.timeout (40 s by default).
const pollTimeout = 5 * time.Minute

func (s *subscriber) poll(ctx context.Context) error {
	hc := &http.Client{Timeout: pollTimeout}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url(), nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			var netErr net.Error
			if ctx.Err() != nil || !errors.As(err, &netErr) {
				return err
			}
			// The server went away (a restart): try again.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(retryDelay):
			}
			continue
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		switch resp.StatusCode {
		case http.StatusOK:
			if err := s.print(data); err != nil {
				return err
			}
		case http.StatusNotModified:
			if m := resp.Header.Get("Last-Message-Id"); protocol.ValidMID(m) {
				s.mid = m
			}
		default:
			return fmt.Errorf("subscribe: %s: %s", resp.Status, bytes.TrimSpace(data))
		}
	}
}

// envelope is one message of a text-mode body or frame.
type envelope struct {
	MID     string          `json:"mid"`
	Channel string          `json:"channel"`
	Text    json.RawMessage `json:"text"`
}

// parseEnvelopes splits data, a run of #!NGINXNMS!#{...}#!NGINXNME!#, into
// its envelopes.
func parseEnvelopes(data []byte) ([]envelope, error) {
	var out []envelope
	rest := bytes.TrimSpace(data)
	for len(rest) > 0 {
		obj, ok := bytes.CutPrefix(rest, []byte(protocol.EnvelopeStart))
		if !ok {
			return nil, fmt.Errorf("subscribe: not a text envelope: %.80q", rest)
		}
		obj, after, ok := bytes.Cut(obj, []byte(protocol.EnvelopeEnd))
		if !ok {
			return nil, fmt.Errorf("subscribe: envelope without its end: %.80q", obj)
		}
		var e envelope
		if err := json.Unmarshal(obj, &e); err != nil {
			return nil, fmt.Errorf("subscribe: bad envelope: %w", err)
		}
		out = append(out, e)
		rest = bytes.TrimSpace(after)
	}
	return out, nil
}
