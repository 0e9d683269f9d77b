package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"google.golang.org/protobuf/proto"

	"github.com/pushpull/pushpull/internal/wsclient"
	"github.com/pushpull/pushpull/protocol/jsonrpc"
	"github.com/pushpull/pushpull/protocol/pb"
)

const codeInvalidParams = jsonrpc.CodeInvalidParams

// poisonBody publishes, as fast as one backend connection can, bodies
// with bytes that are not UTF-8 to the bystander's channel: the server
// must repair them, so every frame the bystander gets is UTF-8.
func (h *hostileRun) poisonBody(ctx context.Context, until time.Time, a *attack) error {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	body := "{\"module_id\":\"hostile\",\"command\":\"poison\",\"params\":{\"x\":\"\xff\xfe\xc3\"}}"
	u := h.pubURL + "?CHANNEL_ID=" + h.byID
	for time.Now().Before(until) && ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
		a.sent.Add(1)
		a.answer(do(client, req))
	}
	return nil
}

// do sends req and returns the answer's status, or "error".
func do(client *http.Client, req *http.Request) string {
	resp, err := client.Do(req)
	if err != nil {
		return "error"
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return strconv.Itoa(resp.StatusCode)
}

// storeFlood has several clients, each on its own signed channel, publish
// messages of about 60 KB to public channels of their own as fast as they
// can: the rate limit refuses most with 429, and what is accepted the
// store keeps within its bound, the oldest going first.
func (h *hostileRun) storeFlood(ctx context.Context, until time.Time, a *attack) error {
	const receivers = 8 // public channels per client, so the store's bound binds before a channel's
	pad := strings.Repeat("p", 60<<10)
	tr := &http.Transport{MaxIdleConnsPerHost: h.o.Attackers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for range h.o.Attackers {
		priv, pub := newChannelID(), newChannelID()
		u := "http://" + h.sub + "/bitrix/rest/?CHANNEL_ID=" + h.signer.SignChannel(priv+":"+pub)
		batches := make([][]byte, receivers)
		for k := range batches {
			id, sig := h.publicID()
			body := fmt.Sprintf(`{"module_id":"hostile","command":"flood","params":{"k":%d,"pad":"%s"}}`, k, pad)
			b, err := proto.Marshal(&pb.RequestBatch{Requests: []*pb.Request{{Command: &pb.Request_IncomingMessages{
				IncomingMessages: &pb.IncomingMessagesRequest{Messages: []*pb.IncomingMessage{{
					Receivers: []*pb.Receiver{{Id: id, Signature: sig}}, Body: proto.String(body),
					Expiry: proto.Uint32(86400), // kept: an attacker asks for the longest life
				}}}}}}})
			if err != nil {
				return err
			}
			batches[k] = b
		}
		wg.Go(func() {
			for k := 0; time.Now().Before(until) && ctx.Err() == nil; k++ {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(batches[k%receivers]))
				req.Header.Set("Content-Type", "application/octet-stream")
				a.sent.Add(1)
				a.answer(do(client, req))
			}
		})
	}
	wg.Wait()
	return nil
}

// followFlood has JSON-RPC connections ask, in batches of 100, to follow
// the statuses of ever more users: past the cap each request is refused
// with -32602.
func (h *hostileRun) followFlood(ctx context.Context, until time.Time, a *attack) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for i := range h.o.Followers {
		wg.Go(func() {
			if err := h.follower(ctx, until, a, uint64(i+1)*1_000_000_000); err != nil && ctx.Err() == nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return firstErr
}

func (h *hostileRun) follower(ctx context.Context, until time.Time, a *attack, users uint64) error {
	u := h.subURL + "?CHANNEL_ID=" + h.signer.SignChannel(newChannelID()) + "&jsonRpc=true"
	conn, br, _, err := ws.Dialer{Timeout: 5 * time.Second}.Dial(ctx, u)
	if err != nil {
		a.answer("dial")
		return fmt.Errorf("follow-flood: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	rw := wsclient.Stream(conn, br)
	var buf bytes.Buffer
	id := 1
	for time.Now().Before(until) {
		buf.Reset()
		buf.WriteByte('[')
		for k := range 100 {
			if k > 0 {
				buf.WriteByte(',')
			}
			fmt.Fprintf(&buf, `{"jsonrpc":"2.0","method":"subscribeStatusChange","params":{"userId":%d},"id":%d}`, users+uint64(id), id)
			id++
		}
		buf.WriteByte(']')
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := wsutil.WriteClientText(conn, buf.Bytes()); err != nil {
			return fmt.Errorf("follow-flood: the server closed the connection: %w", err)
		}
		a.sent.Add(100)
		for answered := false; !answered; {
			data, op, err := wsutil.ReadServerData(rw)
			if err != nil {
				return fmt.Errorf("follow-flood: the server closed the connection: %w", err)
			}
			if op != ws.OpText {
				continue
			}
			if string(data) == "ping" {
				if err := wsutil.WriteClientText(conn, []byte("pong")); err != nil {
					return err
				}
				continue
			}
			var resps []struct {
				Error *struct {
					Code int `json:"code"`
				} `json:"error"`
			}
			if len(data) == 0 || data[0] != '[' || json.Unmarshal(data, &resps) != nil {
				continue // a notification
			}
			counts := map[string]int64{}
			for _, r := range resps {
				if r.Error == nil {
					counts["ok"]++
				} else {
					counts[strconv.Itoa(r.Error.Code)]++
				}
			}
			a.mu.Lock()
			for k, v := range counts {
				a.answers[k] += v
			}
			a.mu.Unlock()
			answered = true
		}
	}
	return nil
}

// slowBody opens connections that each begin a backend publish of 100,000
// bytes and send one byte a second: each must get 408 (or its connection
// closed) once limits.requestTimeout has passed.
func (h *hostileRun) slowBody(ctx context.Context, until time.Time, a *attack) error {
	head := fmt.Sprintf("POST /bitrix/pub/?CHANNEL_ID=%s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n",
		newChannelID(), h.pub)
	return trickle(ctx, until, a, h.o.Conns, func(ctx context.Context) (*slowConn, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		nc, err := d.DialContext(ctx, "tcp", h.pub)
		if err != nil {
			return nil, err
		}
		if _, err := io.WriteString(nc, head); err != nil {
			nc.Close()
			return nil, err
		}
		br := bufio.NewReader(nc)
		return &slowConn{nc: nc, next: func() byte { return 'x' }, answer: func() string {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return "closed"
			}
			resp.Body.Close()
			return strconv.Itoa(resp.StatusCode)
		}}, nil
	})
}

// trickledFrame opens WebSockets that each declare a 65,000-byte text
// frame and send one byte of it a second: each must be closed with 1008
// once limits.requestTimeout has passed.
func (h *hostileRun) trickledFrame(ctx context.Context, until time.Time, a *attack) error {
	return trickle(ctx, until, a, h.o.Conns, func(ctx context.Context) (*slowConn, error) {
		u := h.subURL + "?CHANNEL_ID=" + h.signer.SignChannel(newChannelID())
		conn, br, _, err := ws.Dialer{Timeout: 5 * time.Second}.Dial(ctx, u)
		if err != nil {
			return nil, err
		}
		mask := ws.NewMask()
		if err := ws.WriteHeader(conn, ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: mask, Length: 65000}); err != nil {
			conn.Close()
			return nil, err
		}
		rd := wsclient.Stream(conn, br)
		pos := 0
		return &slowConn{nc: conn, next: func() byte {
			b := 'x' ^ mask[pos%4]
			pos++
			return b
		}, answer: func() string {
			for {
				hdr, err := ws.ReadHeader(rd)
				if err != nil || hdr.Length > 1<<20 {
					return "closed"
				}
				payload := make([]byte, hdr.Length)
				if _, err := io.ReadFull(rd, payload); err != nil {
					return "closed"
				}
				if hdr.OpCode == ws.OpClose {
					if len(payload) < 2 {
						return "close"
					}
					return strconv.Itoa(int(binary.BigEndian.Uint16(payload)))
				}
			}
		}}, nil
	})
}

// slowConn is a connection sending a request one byte a second.
type slowConn struct {
	nc     net.Conn
	next   func() byte   // the next byte to send; called by the trickling goroutine only
	answer func() string // blocks until the server answers or closes; the outcome
	done   atomic.Bool   // the outcome is recorded
}

// trickle opens n connections with open, sends each one byte a second
// until the server answers it, and records the answers. It returns once
// every connection is answered and until has passed, or a while after
// limits.requestTimeout should have answered them all: those still
// waiting then count as "open".
func trickle(ctx context.Context, until time.Time, a *attack, n int, open func(context.Context) (*slowConn, error)) error {
	var (
		mu      sync.Mutex
		conns   []*slowConn
		pending sync.WaitGroup
		dials   sync.WaitGroup
	)
	record := func(c *slowConn, outcome string) {
		if c.done.CompareAndSwap(false, true) {
			a.answer(outcome)
		}
	}
	tctx, stopTrickle := context.WithCancel(ctx)
	defer stopTrickle()
	var trickler sync.WaitGroup
	trickler.Go(func() {
		for sleep(tctx, time.Second) == nil {
			mu.Lock()
			live := append([]*slowConn(nil), conns...)
			mu.Unlock()
			for _, c := range live {
				if c.done.Load() {
					continue
				}
				_ = c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
				_, _ = c.nc.Write([]byte{c.next()})
			}
		}
	})
	sem := make(chan struct{}, 64)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		dials.Go(func() {
			defer func() { <-sem }()
			a.sent.Add(1)
			c, err := open(ctx)
			if err != nil {
				a.answer("dial")
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			pending.Go(func() {
				out := c.answer()
				record(c, out)
				c.nc.Close()
			})
		})
	}
	dials.Wait()
	answered := make(chan struct{})
	go func() {
		pending.Wait()
		close(answered)
	}()
	// The server checks partial WebSocket messages every 10 s.
	giveUp := time.NewTimer(max(time.Until(until), hostileTimeout+15*time.Second))
	defer giveUp.Stop()
	select {
	case <-answered:
		_ = sleep(ctx, time.Until(until))
	case <-giveUp.C:
	case <-ctx.Done():
	}
	stopTrickle()
	trickler.Wait()
	mu.Lock()
	for _, c := range conns {
		record(c, "open")
		c.nc.Close()
	}
	mu.Unlock()
	<-answered
	return nil
}
