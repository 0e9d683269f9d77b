// Package backend is the server's backend API: what the Bitrix pull module
// does for a Bitrix site, for any web application. It issues each user a
// private channel (and everyone a shared one), signed, and rotates them:
// a channel is written for a while, then replaced, and its readers are told
// where to go. It publishes by user id, by channel, to many users at once
// and by watch tag, tells who is online, and answers the client config
// that pull.config.get answers in Bitrix.
//
// Rotation loses nothing: once a channel is replaced, a publish by user id
// goes to the new channel and to the replaced one (one message, one mid,
// both channels) until the replaced one's storage time ends. A client
// still on the old channel reads every message there, up to the
// channel_expire notice and maybe beyond; it then resumes on the new
// channel after the last mid it saw, where every later message is too.
package backend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/protocol"
	"github.com/pushpull/pushpull/sdk"
)

// APIRevision is the pull API revision configs and messages announce; the
// official clients reload when it differs from theirs (19).
const APIRevision = 19

// maxChannelsPerMessage splits a publish to very many channels into
// several messages, so no stored message grows without bound.
const maxChannelsPerMessage = 1000

// Options configure a Service.
type Options struct {
	Engine engine.Engine
	State  State
	Signer *protocol.Signer // channel signatures (security.key, security.algo)
	JWTKey []byte           // HS256 key of protocol-5 tokens; nil: no tokens
	Key    string           // the backend key callers present; "" disables the API

	Version    int           // server.version in configs: 3, 4 or 5
	WriteTTL   time.Duration // how long a channel is written before it is replaced
	StorageTTL time.Duration // how long a channel stays readable after its start
	WatchTTL   time.Duration // a watch's lifetime when the caller names none

	// URLs clients connect to, as configs give them.
	LongPollingURL string
	WebSocketURL   string
	PublishURL     string // client publish (protocols 4, 5); "" for none
	Hostname       string // server.hostname, and the JWT issuer

	Push *PushConfig // Web Push; nil: off

	MaxBody     int           // largest request body (bytes)
	BodyTimeout time.Duration // how long a request body may take to arrive (30 s)
	Log         *slog.Logger
	Now         func() time.Time // nil: time.Now
}

// Service is the backend API.
type Service struct {
	o    Options
	live atomic.Pointer[liveOptions] // what SetKey and SetBodyLimits change
	push *pushState                  // nil: Web Push off
}

// liveOptions are the options a reload changes; the fields of o with the
// same names are those of the start.
type liveOptions struct {
	signer      *protocol.Signer
	jwtKey      []byte
	maxBody     int
	bodyTimeout time.Duration
}

// SetKey replaces the signer of channel ids and the key of protocol-5
// tokens (nil: no tokens): configs handed out from now on are signed with
// them.
func (s *Service) SetKey(signer *protocol.Signer, jwtKey []byte) {
	l := *s.live.Load()
	l.signer, l.jwtKey = signer, jwtKey
	s.live.Store(&l)
}

// SetBodyLimits replaces MaxBody and BodyTimeout; zero values keep them.
func (s *Service) SetBodyLimits(maxBody int, timeout time.Duration) {
	l := *s.live.Load()
	if maxBody > 0 {
		l.maxBody = maxBody
	}
	if timeout > 0 {
		l.bodyTimeout = timeout
	}
	s.live.Store(&l)
}

func (s *Service) signer() *protocol.Signer { return s.live.Load().signer }
func (s *Service) jwtKey() []byte           { return s.live.Load().jwtKey }

// State returns where the service keeps its channels, watches and
// last-seen times.
func (s *Service) State() State { return s.o.State }

// New returns a service for o.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 1 << 20
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = 30 * time.Second
	}
	s := &Service{o: o}
	s.live.Store(&liveOptions{signer: o.Signer, jwtKey: o.JWTKey, maxBody: o.MaxBody, bodyTimeout: o.BodyTimeout})
	if o.Push != nil && o.Push.Sender != nil {
		if store, ok := o.State.(PushStore); ok {
			s.push = newPushState(*o.Push, store)
		}
	}
	return s
}

// Enabled reports whether a backend key is configured.
func (s *Service) Enabled() bool { return s.o.Key != "" }

// newChannel returns a fresh channel starting at now: random private and
// public ids, 32 lowercase hex characters each.
func (s *Service) newChannel(now time.Time) Channel {
	return Channel{ID: randomID(), Public: randomID(), Start: now, End: now.Add(s.o.WriteTTL)}
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// signedID is the id clients present: from protocol 4 on, a private
// channel carries its public id ("<private>:<public>", signed as a whole).
func (s *Service) signedID(c Channel, typ string) string {
	if typ == "private" && s.o.Version >= 4 && c.Public != "" {
		return s.signer().SignChannel(c.ID + ":" + c.Public)
	}
	return s.signer().SignChannel(c.ID)
}

func (s *Service) info(c Channel, typ string) sdk.ChannelInfo {
	return sdk.ChannelInfo{ID: s.signedID(c, typ), Start: c.Start.Format(time.RFC3339), End: c.End.Format(time.RFC3339), Type: typ}
}

// issue returns owner's channels, rotating a channel whose time is up and
// telling its readers.
func (s *Service) issue(ctx context.Context, owner string) (Owner, error) {
	now := s.o.Now()
	o, rotated, err := s.o.State.Issue(ctx, owner, s.newChannel(now), now, s.o.StorageTTL)
	if err != nil {
		return Owner{}, err
	}
	if rotated && o.Previous != nil {
		s.notifyExpired(ctx, owner, *o.Previous, o.Current)
	}
	return o.live(now, s.o.StorageTTL), nil
}

// notifyExpired publishes channel_expire to a replaced channel. From
// protocol 5 on a client connects with a token naming its channels, so it
// must fetch a new config (action get_config) rather than swap the channel.
func (s *Service) notifyExpired(ctx context.Context, owner string, old, current Channel) {
	typ := "private"
	if owner == sharedOwner {
		typ = "shared"
	}
	params := map[string]any{
		"action":      "reconnect",
		"channel":     map[string]string{"id": s.signedID(old, typ), "type": typ},
		"new_channel": s.info(current, typ),
	}
	if s.o.Version >= 5 && s.jwtKey() != nil {
		params["action"] = "get_config"
	}
	body := s.body(Message{ModuleID: "pull", Command: "channel_expire", Params: mustJSON(params)})
	m := &protocol.Message{Channels: []string{old.ID}, Body: body}
	if err := s.o.Engine.Publish(ctx, m); err != nil {
		s.o.Log.Warn("channel_expire not published", "owner", owner, "err", err)
	}
}

func mustJSON(v any) json.RawMessage {
	b, _ := json.Marshal(v) // maps of strings and plain structs always marshal
	return b
}

// Message is the body of a published command, as the pull module
// publishes it: sdk.Message as the server reads it, with params and extra
// kept as the JSON the caller sent.
type Message struct {
	ModuleID string          `json:"module_id"`
	Command  string          `json:"command"`
	Params   json.RawMessage `json:"params,omitempty"`
	Extra    json.RawMessage `json:"extra,omitempty"`
}

// body renders m with its extra completed: the server time and the API
// revision the clients check, unless the caller gave them.
func (s *Service) body(m Message) []byte {
	now := s.o.Now()
	extra := map[string]any{}
	if len(m.Extra) > 0 {
		_ = json.Unmarshal(m.Extra, &extra) // validated by the caller
	}
	defaults := map[string]any{
		"server_time":      now.UTC().Format(time.RFC3339),
		"server_time_unix": now.Unix(),
		"server_name":      s.o.Hostname,
		"revision_web":     APIRevision,
		"revision_mobile":  APIRevision,
	}
	for k, v := range defaults {
		if _, ok := extra[k]; !ok {
			extra[k] = v
		}
	}
	params := m.Params
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	b, _ := json.Marshal(struct {
		ModuleID string          `json:"module_id"`
		Command  string          `json:"command"`
		Params   json.RawMessage `json:"params"`
		Extra    map[string]any  `json:"extra"`
	}{m.ModuleID, m.Command, params, extra})
	return b
}

// Config returns user's config, issuing channels as needed.
func (s *Service) Config(ctx context.Context, user string) (*sdk.Config, error) {
	priv, err := s.issue(ctx, userOwner(user))
	if err != nil {
		return nil, err
	}
	shared, err := s.issue(ctx, sharedOwner)
	if err != nil {
		return nil, err
	}
	now := s.o.Now()
	c := &sdk.Config{
		Server: sdk.ServerInfo{
			Version:           s.o.Version,
			ServerEnabled:     true,
			LongPolling:       s.o.LongPollingURL,
			LongPollingSecure: s.o.LongPollingURL,
			WebSocket:         s.o.WebSocketURL,
			WebSocketSecure:   s.o.WebSocketURL,
			WebSocketEnabled:  s.o.WebSocketURL != "",
			Publish:           s.o.PublishURL,
			PublishSecure:     s.o.PublishURL,
			PublishEnabled:    s.o.Version >= 4 && s.o.PublishURL != "",
			Mode:              "personal",
			Hostname:          s.o.Hostname,
		},
		API: sdk.APIInfo{RevisionWeb: APIRevision, RevisionMobile: APIRevision},
		Channels: map[string]sdk.ChannelInfo{
			"private": s.info(priv.Current, "private"),
			"shared":  s.info(shared.Current, "shared"),
		},
		PublicChannels: map[string]sdk.PublicChannel{},
		ServerTime:     now.Format(time.RFC3339),
	}
	if s.o.Version >= 4 {
		c.PublicChannels[user] = s.publicChannel(user, priv.Current)
	}
	if s.o.Version >= 5 && s.jwtKey() != nil {
		// The token names the channels (shared first) and, for numeric
		// ids as Bitrix has them, the user, for presence.
		exp := priv.Current.End
		if shared.Current.End.Before(exp) {
			exp = shared.Current.End
		}
		claims := map[string]any{
			"iss":  s.o.Hostname,
			"iat":  now.Unix(),
			"exp":  exp.Unix(),
			"chan": shared.Current.ID + "," + priv.Current.ID + ":" + priv.Current.Public,
		}
		if _, err := strconv.ParseUint(user, 10, 63); err == nil {
			claims["sub"] = user
		}
		token := protocol.SignJWT(claims, s.jwtKey())
		c.JWT = &token
		c.Exp = exp.Unix()
	}
	return c, nil
}

func (s *Service) publicChannel(user string, c Channel) sdk.PublicChannel {
	sig := ""
	if s.signer().Enabled() {
		sig = s.signer().Sign("public:" + c.Public)
	}
	return sdk.PublicChannel{
		UserID: user, PublicID: c.Public, Signature: sig,
		Start: c.Start.Format(time.RFC3339), End: c.End.Format(time.RFC3339),
	}
}

// PublicChannels returns the public channels of users who have one.
func (s *Service) PublicChannels(ctx context.Context, users []string) (map[string]sdk.PublicChannel, error) {
	owners, err := s.resolve(ctx, users)
	if err != nil {
		return nil, err
	}
	out := make(map[string]sdk.PublicChannel, len(owners))
	for u, o := range owners {
		out[u] = s.publicChannel(u, o.Current)
	}
	return out, nil
}

// resolve returns the channels of users who have any, rotating those whose
// time is up. Users never issued a channel are absent: nobody reads for them.
func (s *Service) resolve(ctx context.Context, users []string) (map[string]Owner, error) {
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = userOwner(u)
	}
	now := s.o.Now()
	loaded, err := s.o.State.Load(ctx, names, now)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Owner, len(loaded))
	for i, u := range users {
		o, ok := loaded[names[i]]
		if !ok {
			continue
		}
		if !now.Before(o.Current.End) {
			if o, err = s.issue(ctx, names[i]); err != nil {
				return nil, err
			}
		}
		out[u] = o.live(now, s.o.StorageTTL)
	}
	return out, nil
}

// Target names who a publish reaches.
type Target struct {
	Users    []string `json:"users,omitempty"`
	Channels []string `json:"channels,omitempty"` // channel ids, as given (signed or not)
	Tags     []string `json:"tags,omitempty"`
	Shared   bool     `json:"shared,omitempty"` // every user, through the shared channel
}

// Publish sends m to target, with expiry seconds of life (0: the store's
// default). Users without a channel are skipped.
func (s *Service) Publish(ctx context.Context, t Target, m Message, expiry uint32) (sdk.Published, error) {
	users, err := s.targetUsers(ctx, t)
	if err != nil {
		return sdk.Published{}, err
	}
	var channels []string
	seen := make(map[string]bool)
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			channels = append(channels, id)
		}
	}
	for _, c := range t.Channels {
		add(c)
	}
	owners, err := s.resolve(ctx, users)
	if err != nil {
		return sdk.Published{}, err
	}
	for _, u := range users {
		if o, ok := owners[u]; ok {
			add(o.Current.ID)
			if o.Previous != nil {
				add(o.Previous.ID)
			}
		}
	}
	if t.Shared {
		o, err := s.issue(ctx, sharedOwner)
		if err != nil {
			return sdk.Published{}, err
		}
		add(o.Current.ID)
		if o.Previous != nil {
			add(o.Previous.ID)
		}
	}
	res := sdk.Published{Channels: len(channels), Users: len(owners)}
	body := s.body(m)
	for len(channels) > 0 {
		n := min(len(channels), maxChannelsPerMessage)
		msg := &protocol.Message{Channels: channels[:n], Body: body, Expiry: expiry}
		if err := s.o.Engine.Publish(ctx, msg); err != nil {
			return res, err
		}
		res.MIDs = append(res.MIDs, msg.MID)
		channels = channels[n:]
	}
	return res, nil
}

// targetUsers returns the users t names and those watching its tags.
func (s *Service) targetUsers(ctx context.Context, t Target) ([]string, error) {
	users := t.Users
	if len(t.Tags) > 0 {
		watchers, err := s.o.State.Watchers(ctx, t.Tags, s.o.Now())
		if err != nil {
			return nil, err
		}
		users = protocol.UniqueIDs(append(append([]string(nil), users...), watchers...))
	}
	return users, nil
}

// Watch makes user watch tags for ttl (0: the configured default) and
// returns when the watch ends.
func (s *Service) Watch(ctx context.Context, user string, tags []string, ttl time.Duration) (time.Time, error) {
	if ttl <= 0 {
		ttl = s.o.WatchTTL
	}
	until := s.o.Now().Add(ttl)
	return until, s.o.State.Watch(ctx, user, tags, until)
}

// Extend renews user's live watches of tags for ttl (0: the default) and
// returns the tags renewed and those user does not watch.
func (s *Service) Extend(ctx context.Context, user string, tags []string, ttl time.Duration) (extended, unknown []string, err error) {
	if ttl <= 0 {
		ttl = s.o.WatchTTL
	}
	now := s.o.Now()
	ok, err := s.o.State.Extend(ctx, user, tags, now, now.Add(ttl))
	if err != nil {
		return nil, nil, err
	}
	extended, unknown = []string{}, []string{}
	for i, t := range tags {
		if ok[i] {
			extended = append(extended, t)
		} else {
			unknown = append(unknown, t)
		}
	}
	return extended, unknown, nil
}

// Unwatch ends user's watch of tags.
func (s *Service) Unwatch(ctx context.Context, user string, tags []string) error {
	return s.o.State.Unwatch(ctx, user, tags)
}

// Online returns the status of each user: online when a channel of theirs
// has a subscriber or a protocol-5 connection carries them.
func (s *Service) Online(ctx context.Context, users []string) (map[string]sdk.Status, error) {
	owners, err := s.resolve(ctx, users)
	if err != nil {
		return nil, err
	}
	var channels []string
	var whose []string
	for u, o := range owners {
		channels = append(channels, o.Current.ID)
		whose = append(whose, u)
		if o.Previous != nil {
			channels = append(channels, o.Previous.ID)
			whose = append(whose, u)
		}
	}
	counts, err := s.o.Engine.Online(ctx, channels)
	if err != nil {
		return nil, err
	}
	online := make(map[string]bool)
	for i, n := range counts {
		if n > 0 {
			online[whose[i]] = true
		}
	}
	presence, err := s.o.Engine.LastSeen(ctx, users)
	if err != nil {
		return nil, err
	}
	now := s.o.Now()
	var seenNow []string
	for u := range online {
		seenNow = append(seenNow, u)
	}
	if len(seenNow) > 0 {
		if err := s.o.State.Seen(ctx, seenNow, now); err != nil {
			return nil, err
		}
	}
	recorded, err := s.o.State.LastSeen(ctx, users)
	if err != nil {
		return nil, err
	}
	out := make(map[string]sdk.Status, len(users))
	for _, u := range users {
		var st sdk.Status
		if ago, ok := presence[u]; ok {
			st.LastSeen = &ago
			st.Online = ago == 0
		}
		if online[u] {
			st.Online = true
		}
		if st.Online {
			zero := int64(0)
			st.LastSeen = &zero
		} else if t, ok := recorded[u]; ok {
			ago := int64(now.Sub(t) / time.Second)
			if st.LastSeen == nil || ago < *st.LastSeen {
				st.LastSeen = &ago
			}
		}
		out[u] = st
	}
	return out, nil
}

// Command sends a pull command (config_expire, server_restart) to users
// and, with shared, to everyone.
func (s *Service) Command(ctx context.Context, t Target, command string) (sdk.Published, error) {
	switch command {
	case sdk.ConfigExpire, sdk.ServerRestart:
	default:
		return sdk.Published{}, errors.New("command must be config_expire or server_restart")
	}
	return s.Publish(ctx, t, Message{ModuleID: "pull", Command: command}, 0)
}

// Run performs due rotations every interval until ctx ends, and records
// who is online for last-seen times.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.Rotate(ctx); err != nil && ctx.Err() == nil {
			s.o.Log.Warn("channel rotation failed", "err", err)
		}
		if m, ok := s.o.State.(*Memory); ok {
			m.Prune(s.o.Now())
		}
	}
}

// Rotate replaces every channel whose time is up and that has a reader
// now, telling the reader where to go. A channel nobody reads is left: it
// rotates when it is next asked for (a config, a publish), which tells
// whoever reads it later through the stored notice. It returns how many
// channels were replaced.
func (s *Service) Rotate(ctx context.Context) (int, error) {
	n := 0
	for {
		now := s.o.Now()
		due, err := s.o.State.Due(ctx, now, 500)
		if err != nil || len(due) == 0 {
			return n, err
		}
		loaded, err := s.o.State.Load(ctx, due, now)
		if err != nil {
			return n, err
		}
		var names, channels []string
		for _, name := range due {
			if o, ok := loaded[name]; ok {
				names = append(names, name)
				channels = append(channels, o.Current.ID)
			} else if err := s.o.State.Undue(ctx, name, now); err != nil {
				return n, err
			}
		}
		counts, err := s.o.Engine.Online(ctx, channels)
		if err != nil {
			return n, err
		}
		for i, name := range names {
			if counts[i] == 0 {
				if err := s.o.State.Undue(ctx, name, now); err != nil {
					return n, err
				}
				continue
			}
			if _, err := s.issue(ctx, name); err != nil {
				return n, err
			}
			n++
		}
	}
}

// Close releases the state's resources.
func (s *Service) Close() { s.o.State.Close() }
