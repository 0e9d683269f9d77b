// Decrypts one Web Push message body (RFC 8291: aes128gcm, the sender's
// key in the header's key id) with the http_ece package, for the local
// push service of pushpull's Go tests. It reads one JSON object on
// standard input:
//
//   {"body": base64, "privateKey": base64url 32-byte scalar, "auth": base64url}
//
// (the receiver's key and authentication secret) and writes the plaintext
// to standard output; a message it cannot decrypt ends it with status 1
// and the reason on standard error.
import { createECDH } from 'node:crypto';
import ece from 'http_ece';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const req = JSON.parse(input);
const receiver = createECDH('prime256v1');
receiver.setPrivateKey(Buffer.from(req.privateKey, 'base64url'));
try {
  const plain = ece.decrypt(Buffer.from(req.body, 'base64'), {
    version: 'aes128gcm',
    privateKey: receiver,
    authSecret: Buffer.from(req.auth, 'base64url'),
  });
  process.stdout.write(plain);
} catch (err) {
  process.stderr.write(String(err && err.message || err) + '\n');
  process.exit(1);
}
