// Package pushservice is a Web Push service for tests: an HTTPS server on
// a loopback port that takes RFC 8030 push requests as a browser vendor's
// push service does, checks each request's VAPID token (RFC 8292: an
// ES256 JWT for the endpoint's origin, signed by the key it names) and
// decrypts its body with the http_ece npm package (test/webpush), an
// implementation of RFC 8188/8291 that is not pushpull's. It can answer
// with faults and be stopped and started again on the same address.
package pushservice

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushpull/pushpull/internal/webpush"
)

// Message is one push message the service accepted.
type Message struct {
	Subscription string // the id in the endpoint's path
	Payload      []byte // decrypted
	TTL          string
	Urgency      string
	Topic        string
}

// Fault, when it returns a status, answers a request with it (and a
// Retry-After header when retryAfter is not "") instead of accepting it;
// Hang holds the request unanswered until the client gives up. n counts
// the requests to that subscription, from 1.
type Fault func(sub string, n int) (status int, retryAfter string)

// Hang is the status of a Fault that never answers.
const Hang = -1

// Service is a running push service.
type Service struct {
	t     testing.TB
	addr  string
	vapid string // the public key tokens must carry; "" takes any

	client *http.Client

	mu       sync.Mutex
	srv      *httptest.Server
	subs     map[string]*receiver
	msgs     []Message
	requests map[string]int
	times    map[string][]time.Time
	fault    Fault
	errs     []string
}

type receiver struct {
	key  *ecdh.PrivateKey
	auth []byte
}

// Start starts a push service that takes tokens signed by vapidPublic
// (base64url; "" for any key). It stops with the test.
func Start(t testing.TB, vapidPublic string) *Service {
	t.Helper()
	if err := prepare(); err != nil {
		t.Fatal(err)
	}
	s := &Service{t: t, vapid: vapidPublic, subs: map[string]*receiver{}, requests: map[string]int{}, times: map[string][]time.Time{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	s.serve(l)
	s.client = s.srv.Client()
	s.client.Timeout = 10 * time.Second
	t.Cleanup(s.Stop)
	return s
}

func (s *Service) serve(l net.Listener) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	srv.Listener.Close()
	srv.Listener = l
	srv.StartTLS()
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

// Client returns an HTTP client that trusts the service's certificate
// (the same across Stop and Restart).
func (s *Service) Client() *http.Client { return s.client }

// CertFile writes the service's certificate (the same across Stop and
// Restart) to a PEM file in dir and returns its path: a process started
// with SSL_CERT_FILE naming it trusts the service.
func (s *Service) CertFile(dir string) string {
	s.mu.Lock()
	cert := s.srv.Certificate()
	s.mu.Unlock()
	path := filepath.Join(dir, "pushservice.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return path
}

// Stop closes the service: requests to it fail to connect.
func (s *Service) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.CloseClientConnections()
		srv.Close()
	}
}

// Restart starts a stopped service again on its address.
func (s *Service) Restart() {
	s.t.Helper()
	var l net.Listener
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l, err = net.Listen("tcp", s.addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("push service: listen again on %s: %v", s.addr, err)
	}
	s.serve(l)
}

// SetFault makes the service answer with f (nil: accept every request).
func (s *Service) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

// Subscribe returns a new subscription of a browser of this service.
func (s *Service) Subscribe() (id string, sub webpush.Subscription) {
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	idb := make([]byte, 8)
	_, _ = rand.Read(idb)
	id = fmt.Sprintf("%x", idb)
	s.mu.Lock()
	s.subs[id] = &receiver{key: key, auth: auth}
	s.mu.Unlock()
	return id, webpush.Subscription{
		Endpoint: "https://" + s.addr + "/push/" + id,
		P256dh:   base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
		Auth:     base64.RawURLEncoding.EncodeToString(auth),
	}
}

// Unsubscribe makes the subscription gone: requests to it answer 410.
func (s *Service) Unsubscribe(id string) {
	s.mu.Lock()
	delete(s.subs, id)
	s.mu.Unlock()
}

// Messages returns the messages accepted so far.
func (s *Service) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Requests returns how many requests came for subscription id.
func (s *Service) Requests(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[id]
}

// RequestTimes returns when each request for subscription id came.
func (s *Service) RequestTimes(id string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.times[id]...)
}

// Errors returns what was wrong with the requests refused with 400 or 401.
func (s *Service) Errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errs...)
}

func (s *Service) refuse(w http.ResponseWriter, code int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.errs = append(s.errs, msg)
	s.mu.Unlock()
	http.Error(w, msg, code)
}

func (s *Service) handle(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/push/")
	if !ok || r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.requests[id]++
	s.times[id] = append(s.times[id], time.Now())
	n := s.requests[id]
	rcv := s.subs[id]
	fault := s.fault
	s.mu.Unlock()
	if fault != nil {
		code, ra := fault(id, n)
		if code == Hang {
			// Read to the end, so that the server notices the client
			// closing the connection, which ends the request's context.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		if code != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			http.Error(w, "fault", code)
			return
		}
	}
	if rcv == nil {
		http.Error(w, "no such subscription", http.StatusGone)
		return
	}
	if err := s.checkVAPID(r); err != nil {
		s.refuse(w, http.StatusUnauthorized, "VAPID: %v", err)
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		s.refuse(w, http.StatusBadRequest, "Content-Encoding %q, want aes128gcm", ce)
		return
	}
	ttl := r.Header.Get("TTL")
	if ttl == "" {
		s.refuse(w, http.StatusBadRequest, "no TTL header")
		return
	}
	if topic := r.Header.Get("Topic"); len(topic) > 32 || strings.ContainsFunc(topic, func(c rune) bool {
		return !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_')
	}) {
		s.refuse(w, http.StatusBadRequest, "Topic %q: want at most 32 base64url characters", topic)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, webpush.MaxBody+1))
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "body: %v", err)
		return
	}
	if len(body) > webpush.MaxBody {
		s.refuse(w, http.StatusRequestEntityTooLarge, "body over %d bytes", webpush.MaxBody)
		return
	}
	plain, err := decrypt(body, rcv)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "decrypt: %v", err)
		return
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, Message{Subscription: id, Payload: plain, TTL: ttl, Urgency: r.Header.Get("Urgency"), Topic: r.Header.Get("Topic")})
	s.mu.Unlock()
	w.Header().Set("Location", "https://"+s.addr+"/message/"+id)
	w.WriteHeader(http.StatusCreated)
}

// checkVAPID verifies r's "vapid t=<JWT>, k=<key>" authorization: an ES256
// signature by k, the audience this origin, an expiry within 24 hours,
// a subject.
func (s *Service) checkVAPID(r *http.Request) error {
	scheme, params, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "vapid") {
		return errors.New("no vapid authorization")
	}
	var token, key string
	for p := range strings.SplitSeq(params, ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch name {
		case "t":
			token = value
		case "k":
			key = value
		}
	}
	if s.vapid != "" && key != s.vapid {
		return fmt.Errorf("key %q is not the application's", key)
	}
	raw, err := base64.RawURLEncoding.DecodeString(key)
	if err != nil {
		return fmt.Errorf("k: %v", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return fmt.Errorf("k: %v", err)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("t: not a JWT")
	}
	var header struct{ Typ, Alg string }
	var claims struct {
		Aud string
		Exp int64
		Sub string
	}
	if err := decodePart(parts[0], &header); err != nil || header.Alg != "ES256" {
		return fmt.Errorf("JWT header: %+v %v", header, err)
	}
	if err := decodePart(parts[1], &claims); err != nil {
		return fmt.Errorf("JWT claims: %v", err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return errors.New("JWT signature: not 64 bytes of base64url")
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return errors.New("JWT signature does not verify")
	}
	if claims.Aud != "https://"+s.addr {
		return fmt.Errorf("aud %q, want https://%s", claims.Aud, s.addr)
	}
	if now := time.Now().Unix(); claims.Exp <= now || claims.Exp > now+24*3600 {
		return fmt.Errorf("exp %d not within the next 24 h", claims.Exp)
	}
	if !strings.HasPrefix(claims.Sub, "mailto:") && !strings.HasPrefix(claims.Sub, "https:") {
		return fmt.Errorf("sub %q: want a mailto: or https: URI", claims.Sub)
	}
	return nil
}

func decodePart(p string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// decrypt runs test/webpush/decrypt.mjs on body.
func decrypt(body []byte, rcv *receiver) ([]byte, error) {
	in, _ := json.Marshal(map[string]string{
		"body":       base64.StdEncoding.EncodeToString(body),
		"privateKey": base64.RawURLEncoding.EncodeToString(rcv.key.Bytes()),
		"auth":       base64.RawURLEncoding.EncodeToString(rcv.auth),
	})
	cmd := exec.Command("node", filepath.Join(dir, "decrypt.mjs"))
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("http_ece: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

var (
	dir         string
	prepareOnce sync.Once
	prepareErr  error
)

// prepare finds test/webpush and installs its locked dependencies (npm ci)
// when they are missing.
func prepare() error {
	prepareOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "test", "webpush")
		if _, err := exec.LookPath("node"); err != nil {
			prepareErr = errors.New("node is not installed: the Web Push tests decrypt with the http_ece npm package")
			return
		}
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "http_ece")); err == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			prepareErr = fmt.Errorf("npm ci in %s: %v\n%s", dir, err, out)
		}
	})
	return prepareErr
}
