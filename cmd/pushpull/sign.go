package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/pushpull/pushpull/protocol"
)

// sign prints each channel id signed with the security key, as the backend
// hands them to clients: <id>.<signature>. A private channel carrying its
// public id (protocol 4) is signed as a whole: sign "<private>:<public>".
// With --public it prints <id>.<signature of "public:<id>">, the signature
// publicChannels gives for a public id.
func sign(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("key", os.Getenv("PUSHPULL_KEY"), "security key (env PUSHPULL_KEY)")
	algo := fs.String("algo", "sha1", "signature algorithm: sha1, sha256, sha512, md5")
	public := fs.Bool("public", false, `sign public ids: the signature of "public:<id>"`)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pushpull sign --key KEY [--algo sha1] [--public] CHANNEL_ID...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	s, err := protocol.NewSigner(*key, *algo)
	if err != nil {
		return err
	}
	if *public && !s.Enabled() {
		return errors.New("sign: --public needs --key")
	}
	for _, id := range fs.Args() {
		if *public {
			fmt.Fprintln(stdout, id+"."+s.Sign("public:"+id))
			continue
		}
		fmt.Fprintln(stdout, s.SignChannel(id))
	}
	return nil
}
