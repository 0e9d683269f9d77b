// Protocol 4: the protobuf frames, through the code generated from
// protocol/pb/push_server.proto (src/gen, `npm run generate`).
import { ResponseBatch } from "./gen/decode/push_server.js";
import { RequestBatch } from "./gen/encode/push_server.js";

/** One OutgoingMessage of a ResponseBatch, its ids in hex. */
export interface BinaryMessage {
  /** The message id: the bytes hex-encoded (pushpull: the 26-digit mid). */
  mid: string;
  /** The published JSON text. */
  body: string;
  /** 1 client, 2 backend, 0 or absent unknown. */
  senderType?: number;
  /** The sender's channel id (a client's public id), hex. */
  senderId?: string;
}

/** A receiver of a client publish: a public channel id and its signature, hex. */
export interface BinaryReceiver {
  id: string;
  signature: string;
}

/** One message of a client publish. */
export interface BinaryPublish {
  receivers: BinaryReceiver[];
  /** JSON text: {"module_id","command","params"}. */
  body: string;
  expiry?: number;
}

/**
 * The messages of a ResponseBatch (a protocol-4 WebSocket frame or
 * long-polling answer), in order. Responses other than outgoingMessages
 * (channel or server statistics) are skipped. Throws on bytes that are
 * not a ResponseBatch.
 */
export function decodeResponseBatch(bytes: Uint8Array): BinaryMessage[] {
  const out: BinaryMessage[] = [];
  for (const r of ResponseBatch.decode(bytes).responses) {
    if (r.command?.$case !== "outgoingMessages") continue;
    for (const m of r.command.value.messages) {
      const b: BinaryMessage = { mid: toHex(m.id ?? new Uint8Array()), body: m.body ?? "" };
      if (m.sender) {
        if (m.sender.type !== undefined) b.senderType = m.sender.type;
        if (m.sender.id !== undefined && m.sender.id.length > 0) b.senderId = toHex(m.sender.id);
      }
      out.push(b);
    }
  }
  return out;
}

/**
 * The RequestBatch a client sends to publish: one Request holding the
 * messages, receivers by public id and signature (isPrivate unset).
 */
export function encodePublish(messages: BinaryPublish[]): Uint8Array {
  return RequestBatch.encode({
    requests: [
      {
        command: {
          $case: "incomingMessages",
          value: {
            messages: messages.map((m) => ({
              receivers: m.receivers.map((r) => ({ id: fromHex(r.id), signature: fromHex(r.signature) })),
              body: m.body,
              expiry: m.expiry ?? 0,
            })),
          },
        },
      },
    ],
  }).finish();
}

/** Lowercase hex, two digits per byte. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += (b < 16 ? "0" : "") + b.toString(16);
  return s;
}

/** The bytes of a hex string; throws on anything else. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new TypeError(`not a hex id: ${JSON.stringify(hex)}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
