package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// Publisher posts messages to the publish route over one keep-alive
// HTTP/1.1 connection. It writes each request with one system call and
// reads only the status line and the framing headers of the answer, so the
// bench spends little of the CPU it shares with the server. It is not safe
// for concurrent use: each publishing goroutine has its own.
type Publisher struct {
	// Expiry, when above 0, is sent as Message-Expiry: the seconds pushpull
	// keeps the message for clients that reconnect. Without it pushpull
	// delivers the message to the clients connected and keeps nothing.
	Expiry int
	// Created takes 201 and 202 as success too, as nchan answers a publish
	// (201 when the channel has subscribers, 202 when none).
	Created bool

	addr   string // host:port
	head   []byte // "POST /path?CHANNEL_ID=" (or "...&CHANNEL_ID=")
	binary []byte // "POST /path?binaryMode=true"
	host   string
	nc     net.Conn
	br     *bufio.Reader
	req    []byte
	errBuf []byte
}

// NewPublisher returns a publisher for an http:// publish URL such as
// http://127.0.0.1:8895/bitrix/pub/.
func NewPublisher(pubURL string) (*Publisher, error) {
	u, err := url.Parse(pubURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("publish URL %q: only http:// is supported", pubURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	head := "POST " + path + "?"
	if u.RawQuery != "" {
		head += u.RawQuery + "&"
	}
	binary := head + "binaryMode=true"
	head += "CHANNEL_ID="
	return &Publisher{addr: addr, host: u.Host, head: []byte(head), binary: []byte(binary)}, nil
}

// StatusError is a publish the server did not answer with 200.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return fmt.Sprintf("publish answered %d %q", e.Code, e.Body) }

// Publish posts body to channel (an id, signed if the server wants it).
func (p *Publisher) Publish(channel string, body []byte) error {
	p.req = append(p.req[:0], p.head...)
	p.req = append(p.req, channel...)
	return p.send("application/json", body)
}

// PublishClient posts body to channel of installation clientID, as a
// server in the shared mode (security.clients) wants publishes.
func (p *Publisher) PublishClient(clientID, channel string, body []byte) error {
	p.req = append(p.req[:0], p.head...)
	p.req = append(p.req, channel...)
	p.req = append(p.req, "&clientId="...)
	p.req = append(p.req, url.QueryEscape(clientID)...)
	return p.send("application/json", body)
}

// PublishBatch posts a protocol-4 RequestBatch (protobuf), the way the
// Bitrix backend publishes many messages in one request.
func (p *Publisher) PublishBatch(batch []byte) error {
	p.req = append(p.req[:0], p.binary...)
	return p.send("application/octet-stream", batch)
}

// send completes the request line begun in p.req and posts body.
func (p *Publisher) send(contentType string, body []byte) error {
	p.req = append(p.req, " HTTP/1.1\r\nHost: "...)
	p.req = append(p.req, p.host...)
	p.req = append(p.req, "\r\nContent-Type: "...)
	p.req = append(p.req, contentType...)
	if p.Expiry > 0 {
		p.req = append(p.req, "\r\nMessage-Expiry: "...)
		p.req = strconv.AppendInt(p.req, int64(p.Expiry), 10)
	}
	p.req = append(p.req, "\r\nContent-Length: "...)
	p.req = strconv.AppendInt(p.req, int64(len(body)), 10)
	p.req = append(p.req, "\r\n\r\n"...)
	p.req = append(p.req, body...)

	reused := p.nc != nil
	err := p.roundTrip()
	if err != nil && reused && !errors.As(err, new(*StatusError)) {
		// A kept-alive connection the server has just closed: one retry
		// on a fresh connection.
		err = p.roundTrip()
	}
	return err
}

func (p *Publisher) roundTrip() error {
	if p.nc == nil {
		nc, err := net.DialTimeout("tcp", p.addr, 10*time.Second)
		if err != nil {
			return err
		}
		p.nc = nc
		if p.br == nil {
			p.br = bufio.NewReaderSize(nc, 4096)
		} else {
			p.br.Reset(nc)
		}
	}
	if _, err := p.nc.Write(p.req); err != nil {
		p.Close()
		return err
	}
	code, keep, err := p.readResponse()
	if err != nil || !keep {
		p.Close()
	}
	if err != nil {
		return err
	}
	if code != 200 && !(p.Created && (code == 201 || code == 202)) {
		return &StatusError{Code: code, Body: string(p.errBuf)}
	}
	return nil
}

// readResponse reads one answer and reports its status and whether the
// connection may carry another request. Non-200 bodies are kept in errBuf.
func (p *Publisher) readResponse() (code int, keep bool, err error) {
	return ReadResponse(p.br, &p.errBuf)
}

// ReadResponse reads one HTTP/1.1 response from br: the status code, whether
// the connection stays open, and (for a status other than 2xx) up to 200
// bytes of the body in *errBody.
func ReadResponse(br *bufio.Reader, errBody *[]byte) (code int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK"
	proto, rest, ok := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte{' '})
	if !ok || !bytes.HasPrefix(proto, []byte("HTTP/1.")) || len(rest) < 3 {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	code, err = strconv.Atoi(string(rest[:3]))
	if err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	keep = string(proto) == "HTTP/1.1"
	length, chunked := int64(-1), false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return 0, false, fmt.Errorf("bad header line %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, err = strconv.ParseInt(string(value), 10, 64)
			if err != nil || length < 0 {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	*errBody = (*errBody)[:0]
	body := io.Discard
	success := code/100 == 2
	if !success {
		body = &limitedBuffer{b: errBody, max: 200}
	}
	switch {
	case code == 204 || code == 304 || code/100 == 1:
	case chunked:
		err = readChunked(br, body)
	case length == 0:
	case length > 0 && success:
		_, err = br.Discard(int(length))
	case length > 0:
		_, err = io.CopyN(body, br, length)
	default:
		// The body runs to the end of the connection.
		_, err = io.Copy(body, br)
		keep = false
	}
	if err != nil {
		return 0, false, err
	}
	return code, keep, nil
}

func readChunked(br *bufio.Reader, body io.Writer) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i] // chunk extensions
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if size == 0 {
			// Trailers, up to the blank line.
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := io.CopyN(body, br, size); err != nil {
			return err
		}
		if _, err := br.Discard(2); err != nil { // CRLF after the data
			return err
		}
	}
}

// limitedBuffer keeps the first max bytes written to it and drops the rest.
type limitedBuffer struct {
	b   *[]byte
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - len(*l.b); room > 0 {
		*l.b = append(*l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Close closes the connection; the next Publish opens a new one.
func (p *Publisher) Close() {
	if p.nc != nil {
		p.nc.Close()
		p.nc = nil
	}
}
