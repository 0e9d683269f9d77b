// Package pb holds the protocol-4 (binary mode) wire schema: Go types
// generated from push_server.proto, and a hand-written encoder of the one
// message the server sends on its hot path.
//
// The generated file is committed so that building needs no protoc. To
// regenerate it after editing push_server.proto (protoc and protoc-gen-go
// on PATH):
//
//	go generate ./protocol/pb
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative push_server.proto
