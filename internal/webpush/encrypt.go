package webpush

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
)

// MaxBody is the largest push message body every push service must take
// (RFC 8030 section 7.2); MaxPayload is the most plaintext that fits in
// it as one aes128gcm record (RFC 8291 section 4): 4096 less the 86-byte
// header, the 16-byte tag and the delimiter.
const (
	MaxBody    = 4096
	MaxPayload = MaxBody - headerLen - 16 - 1

	headerLen  = 16 + 4 + 1 + 65
	recordSize = MaxBody
)

// PayloadTooLarge is the error of a payload past MaxPayload.
type PayloadTooLarge struct{ Size int }

func (e PayloadTooLarge) Error() string {
	return fmt.Sprintf("payload is %d bytes; Web Push carries at most %d (a %d-byte encrypted message)", e.Size, MaxPayload, MaxBody)
}

// Encrypt encrypts payload for k as RFC 8291 says: an ephemeral P-256 key
// agreed with the receiver's, the authentication secret mixed in, one
// aes128gcm record with the ephemeral key as its key id. A payload past
// MaxPayload is refused (PayloadTooLarge), never truncated.
func Encrypt(k *Keys, payload []byte) ([]byte, error) {
	return encrypt(k, payload, rand.Reader)
}

func encrypt(k *Keys, payload []byte, random io.Reader) ([]byte, error) {
	if len(payload) > MaxPayload {
		return nil, PayloadTooLarge{len(payload)}
	}
	eph, err := ecdh.P256().GenerateKey(random)
	if err != nil {
		return nil, err
	}
	var salt [16]byte
	if _, err := io.ReadFull(random, salt[:]); err != nil {
		return nil, err
	}
	secret, err := eph.ECDH(k.Public)
	if err != nil {
		return nil, err
	}
	asPublic := eph.PublicKey().Bytes()
	// IKM = HKDF(auth, ecdh_secret, "WebPush: info" 0x00 ua_public as_public)
	info := "WebPush: info\x00" + string(k.Public.Bytes()) + string(asPublic)
	ikm, err := hkdf.Key(sha256.New, secret, k.Auth, info, 32)
	if err != nil {
		return nil, err
	}
	prk, err := hkdf.Extract(sha256.New, ikm, salt[:])
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	out := make([]byte, headerLen, headerLen+len(payload)+1+gcm.Overhead())
	copy(out, salt[:])
	binary.BigEndian.PutUint32(out[16:], recordSize)
	out[20] = byte(len(asPublic))
	copy(out[21:], asPublic)
	plain := make([]byte, 0, len(payload)+1)
	plain = append(append(plain, payload...), 2) // the last record's delimiter, no padding
	return gcm.Seal(out, nonce, plain, nil), nil
}
