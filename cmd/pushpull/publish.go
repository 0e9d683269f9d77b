package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pushpull/pushpull/sdk"
)

// listFlag collects a repeatable flag whose values may also be comma
// lists: --channel a --channel b,c.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// publishCmd publishes one message: to channels on the text publish route,
// or, with --backend, to users, tags, channels or everyone through the
// backend API, printing what the API answers.
func publishCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pubURL := fs.String("url", "http://127.0.0.1:9010/bitrix/pub/", "text publish route")
	backendURL := fs.String("backend", "", "backend API `URL` (http://127.0.0.1:9010/pushpull/): publish through it")
	key := fs.String("key", os.Getenv("PUSHPULL_BACKEND_KEY"), "backend key, with --backend (env PUSHPULL_BACKEND_KEY)")
	var channels, users, tags listFlag
	fs.Var(&channels, "channel", "channel `ID` (signed or not), repeatable or a comma list")
	fs.Var(&users, "user", "user `ID` to publish to, with --backend; repeatable or a comma list")
	fs.Var(&tags, "tag", "watch `TAG` to publish to, with --backend; repeatable or a comma list")
	shared := fs.Bool("shared", false, "publish to everyone, with --backend")
	expiry := fs.Int("expiry", 0, "message lifetime in `seconds` (0: the server's default)")
	module := fs.String("module", "", "the message's module_id")
	command := fs.String("command", "", "the message's command")
	params := fs.String("params", "{}", "the message's params, a JSON object")
	raw := fs.Bool("raw", false, "read the whole message text from stdin")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: pushpull publish --channel ID [--url URL] (--module M --command C [--params JSON] | --raw < message.json)
       pushpull publish --backend URL --key K (--user ID | --tag T | --channel ID | --shared) (--module M --command C [--params JSON] | --raw)`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("publish: unexpected argument %q", fs.Arg(0))
	}
	if *expiry < 0 {
		return errors.New("publish: --expiry must not be negative")
	}
	var body []byte
	if *raw {
		if *module != "" || *command != "" {
			return errors.New("publish: give --raw or --module and --command, not both")
		}
		b, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("publish: reading stdin: %w", err)
		}
		body = b
	} else {
		if *module == "" || *command == "" {
			fs.Usage()
			return errors.New("publish: give --module and --command, or --raw")
		}
		if !json.Valid([]byte(*params)) || !strings.HasPrefix(strings.TrimSpace(*params), "{") {
			return errors.New("publish: --params must be a JSON object")
		}
		b, err := json.Marshal(sdk.Message{ModuleID: *module, Command: *command, Params: json.RawMessage(*params)})
		if err != nil {
			return err
		}
		body = b
	}

	if *backendURL == "" {
		if len(users)+len(tags) > 0 || *shared {
			return errors.New("publish: --user, --tag and --shared need --backend")
		}
		if len(channels) == 0 {
			fs.Usage()
			return errors.New("publish: no --channel")
		}
		c := sdk.New("", "", sdk.WithPublishURL(*pubURL))
		return c.PublishRaw(ctx, channels, body, time.Duration(*expiry)*time.Second)
	}

	var m struct {
		ModuleID string          `json:"module_id"`
		Command  string          `json:"command"`
		Params   json.RawMessage `json:"params"`
		Extra    json.RawMessage `json:"extra"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("publish: the message is not JSON: %w", err)
	}
	p := sdk.Publish{
		Users: users, Channels: channels, Tags: tags, Shared: *shared, Expiry: *expiry,
		Message: sdk.Message{ModuleID: m.ModuleID, Command: m.Command},
	}
	// Absent parts stay absent rather than becoming null.
	if len(m.Params) > 0 {
		p.Message.Params = m.Params
	}
	if len(m.Extra) > 0 {
		p.Message.Extra = m.Extra
	}
	res, err := sdk.New(*backendURL, *key).Publish(ctx, p)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(res)
}
