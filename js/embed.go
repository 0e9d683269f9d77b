// Package js holds the browser client (@pushpull/client): TypeScript source
// in src/, the built ES modules in dist/. dist/ is committed and embedded
// here so that the server can serve the client without a JS build.
package js

import (
	"embed"
	"io/fs"
)

//go:embed dist/*.js
var dist embed.FS

// Dist returns the built client's ES modules, index.js the entry point.
func Dist() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}
