package redisengine

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/redis/rueidis"

	"github.com/pushpull/pushpull/internal/config"
	"github.com/pushpull/pushpull/internal/testutil/redistest"
)

// storage.socket, as the appliance's templates configure Redis
// ("/tmp/redis.sock"), is dialed as a unix socket.
func TestOptionsSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "pp-sock-") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "redis.sock")
	redistest.Start(t, "--unixsocket", sock, "--unixsocketperm", "700")
	c := config.Default()
	c.Storage.Type, c.Storage.Socket = "redis", sock
	client, err := rueidis.NewClient(OptionsFromConfig(c).Client)
	if err != nil {
		t.Fatalf("connecting to %s: %v", sock, err)
	}
	defer client.Close()
	if err := client.Do(context.Background(), client.B().Ping().Build()).Error(); err != nil {
		t.Fatalf("PING over %s: %v", sock, err)
	}
}
