package sdk_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/pushpull/pushpull/sdk"
)

// This example hands user 7 a client config, publishes to the user and
// asks whether the user is online. backendURL is the backend route of a
// server with security.backendKey set, such as
// http://127.0.0.1:9010/pushpull/.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	client := sdk.New(backendURL, backendKey)

	// The official client starts from this config, as from
	// pull.config.get in Bitrix.
	cfg, err := client.Config(ctx, "7")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("channels:", cfg.Channels["private"].Type, cfg.Channels["shared"].Type)

	p, err := client.Publish(ctx, sdk.Publish{
		Users: []string{"7"},
		Message: sdk.Message{
			ModuleID: "im",
			Command:  "message",
			Params:   map[string]any{"text": "hi"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d message to %d channel\n", len(p.MIDs), p.Channels)

	status, err := client.Online(ctx, []string{"7"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("online:", status["7"].Online)

	// Output:
	// channels: private shared
	// 1 message to 1 channel
	// online: false
}
