package backend

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/engine"
	"github.com/pushpull/pushpull/internal/redisengine"
	"github.com/pushpull/pushpull/internal/webpush"
	"github.com/pushpull/pushpull/protocol"
)

// FromConfig builds the backend API of a server configured by cfg,
// publishing through e. With Redis storage it opens its own client to the
// same Redis, keeping its keys under storage.prefix + "pushpull:".
func FromConfig(cfg *config.Config, e engine.Engine, log *slog.Logger) (*Service, error) {
	signer, err := protocol.NewSigner(cfg.Security.Key, cfg.Security.Algo)
	if err != nil {
		return nil, err
	}
	o := Options{
		Engine:      e,
		Signer:      signer,
		Key:         cfg.Security.BackendKey,
		Version:     cfg.Backend.Version,
		WriteTTL:    config.Seconds(cfg.Backend.ChannelWriteTTL),
		StorageTTL:  config.Seconds(cfg.Backend.ChannelStorageTTL),
		WatchTTL:    config.Seconds(cfg.Backend.WatchTTL),
		MaxBody:     cfg.Limits.MaxPayload,
		BodyTimeout: config.Seconds(cfg.Limits.RequestTimeout),
		Log:         log,
	}
	if cfg.Security.Key != "" {
		o.JWTKey = []byte(cfg.Security.Key)
	}
	o.LongPollingURL, o.WebSocketURL, o.PublishURL, o.Hostname = clientURLs(cfg)
	if w := cfg.WebPush; w.VAPIDPrivateKey != "" {
		v, err := webpush.NewVAPID(w.VAPIDPrivateKey, w.VAPIDPublicKey, w.Subject)
		if err != nil {
			return nil, err
		}
		o.Push = &PushConfig{
			Sender:       &webpush.Sender{VAPID: v, Client: webpush.NewClient(w.AllowPrivateEndpoints)},
			AllowPrivate: w.AllowPrivateEndpoints,
			DeferDelay:   config.Seconds(w.DeferDelay),
			MaxQueue:     w.MaxQueue,
			MaxAttempts:  w.MaxAttempts,
			Rate:         w.MessagesPerSecond,
			UserRate:     w.UserMessagesPerMinute,
		}
	}
	if cfg.Storage.Type == "redis" && o.Key != "" {
		client, err := rueidis.NewClient(redisengine.OptionsFromConfig(cfg).Client)
		if err != nil {
			return nil, fmt.Errorf("backend: redis: %w", err)
		}
		prefix := cfg.Storage.Prefix + "pushpull:"
		if cfg.Storage.Cluster {
			prefix = cfg.Storage.Prefix + "{pushpull}:backend:"
		}
		o.State = NewRedis(client, prefix)
	} else {
		o.State = NewMemory()
	}
	return New(o), nil
}

// SetClientURLs derives the URLs configs hand out from cfg again: the
// process calls it once its servers listen, for those configured on port
// 0, whose ports cfg holds only then. It must come before the service
// serves.
func (s *Service) SetClientURLs(cfg *config.Config) {
	s.o.LongPollingURL, s.o.WebSocketURL, s.o.PublishURL, s.o.Hostname = clientURLs(cfg)
}

// clientURLs derives the URLs configs hand out from backend.publicURL, or
// else from the first server serving sub routes: long polling on its first
// sub route, WebSocket on the one named like "ws" (else its last), client
// publish on its first rest route.
func clientURLs(cfg *config.Config) (longPolling, webSocket, publish, hostname string) {
	var sub *config.Server
	for i := range cfg.Servers {
		if len(cfg.Servers[i].Routes.Sub) > 0 {
			sub = &cfg.Servers[i]
			break
		}
	}
	if sub == nil {
		return "", "", "", ""
	}
	base := cfg.Backend.PublicURL
	if base == "" {
		host := sub.Hostname
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		scheme := "http"
		if sub.SSL != nil {
			scheme = "https"
		}
		base = scheme + "://" + net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(sub.Port))
	}
	base = strings.TrimSuffix(base, "/")
	wsBase := "ws" + strings.TrimPrefix(base, "http")
	routes := sub.Routes.Sub
	wsRoute := routes[len(routes)-1]
	for _, r := range routes {
		if strings.Contains(r, "ws") {
			wsRoute = r
			break
		}
	}
	longPolling, webSocket = base+routes[0], wsBase+wsRoute
	if len(sub.Routes.Rest) > 0 {
		publish = base + sub.Routes.Rest[0]
	}
	if u, err := url.Parse(base); err == nil {
		hostname = u.Hostname()
	}
	return longPolling, webSocket, publish, hostname
}
