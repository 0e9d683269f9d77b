// Runs the official Bitrix24 pull client (@bitrix24/b24jssdk) under Node
// against a pushpull server, so the end-to-end tests can check the server
// with the very code browsers run.
//
// Usage: node client.mjs '<options JSON>'
//
// Options:
//   websocket           WebSocket base URL (ws://host:port/bitrix/subws/)
//   long_polling        long-polling base URL (http://host:port/bitrix/sub/)
//   channel             the private channel id as the client sends it (signed
//                       when the server has a key)
//   shared_channel      optional shared channel id, sent after the private one
//   version             server.version: 3 text, 4 protobuf, 5 JSON-RPC
//   websocket_enabled   false forces long polling (default true)
//   publish             optional client publish URL (versions 4+)
//   publish_enabled     optional, default false
//   jwt, clientId, mode optional config fields (versions 4-5, shared mode)
//   publicChannels      optional config field
//   userId, siteId      optional (default 1, "s1")
//   backend             optional {url, key}: the REST stub then answers
//                       pull.config.get and pull.watch.extend by calling the
//                       server's backend API at url (…/pushpull/) with key,
//                       for userId, and the other options are not used
//
// Output, one JSON object per line on stdout:
//   {"type":"ready"}                              the client is set up
//   {"type":"request","transport":"websocket"|"longpolling","url":...}
//                                                 every connection it opens
//   {"type":"post","url":...,"body":...,"code":<HTTP status>}
//                                                 every POST it made (long
//                                                 polling sends there what
//                                                 it would send on a
//                                                 WebSocket), once answered
//   {"type":"envelope","mid":...,"channel":...}   every message the server
//                                                 delivered, before the
//                                                 client's own duplicate filter
//   {"type":"message","moduleId","command","params","extra"}
//                                                 every message the client
//                                                 hands to the application
//   {"type":"status","status":"connect"|"online"|"offline"}
//   {"type":"error","error":...}                  start() failed
//
// Commands, one per line on stdin:
//   disconnect   drop the connection as the client does when the browser
//                goes offline; the session (last mid) is kept
//   connect      reconnect as the client does when the browser comes back
//                online; it resumes from its last mid
//   config <JSON options>   the config the REST stub answers from now on
//   publish <JSON>  publish as the client does (versions 4+):
//                {"channels":["<publicId>.<signature>",...], "users":[ids],
//                 "module":..., "command":..., "params":{...}}; reports
//                {"type":"published"} or {"type":"publish_failed","error":...}
//   publishbatch <JSON>  the same through sendMessageBatch, the one publish
//                of version 5 that goes by the current connector (a POST to
//                server.publish when long polling)
//   watch <userId>  follow the user's online status (version 5); reports
//                {"type":"watching"}, then {"type":"user_status","userId","isOnline"}
//                on each change
//   lastseen <JSON list of user ids>  (version 5) reports
//                {"type":"lastseen","result":{...}}
//   stop         exit

import readline from 'node:readline';
import WS from 'ws';
import XHR2 from 'xhr2';
import {
  B24PullClientManager,
  AbstractLogger,
  LogLevel,
  SubscriptionType,
} from '@bitrix24/b24jssdk';

function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

// Browser globals the SDK expects. Window listeners are kept so "offline" and
// "online" can be fired the way a browser fires them.
const windowListeners = new Map();
globalThis.window = globalThis;
globalThis.addEventListener = (type, handler) => {
  if (!windowListeners.has(type)) {
    windowListeners.set(type, new Set());
  }
  windowListeners.get(type).add(handler);
};
globalThis.removeEventListener = (type, handler) => {
  windowListeners.get(type)?.delete(handler);
};
function fireWindowEvent(type) {
  for (const handler of windowListeners.get(type) ?? []) {
    handler({ type });
  }
}

// The page the client runs on: an http page, so the client takes the
// non-secure URLs of its config (it picks the secure ones on https pages).
// The SDK's IE check also looks for document.attachEvent.
globalThis.document = { location: { href: 'http://localhost/' } };

// WebSocket that reports the URL the client opens.
class ReportingWebSocket extends WS {
  constructor(url, protocols) {
    emit({ type: 'request', transport: 'websocket', url: String(url) });
    super(url, protocols);
  }
}
globalThis.WebSocket = ReportingWebSocket;

// XMLHttpRequest that reports the URL the client polls, and that aborts as
// browsers do: xhr2 leaves readyState where it was on abort(), while the
// spec moves it to DONE (firing readystatechange) and then to UNSENT. The
// SDK's long-polling connector relies on that to start its next request
// after disconnect().
class BrowserXMLHttpRequest extends XHR2 {
  open(method, url, ...rest) {
    if (String(method).toUpperCase() === 'POST') {
      this._reportPost = String(url);
    } else {
      emit({ type: 'request', transport: 'longpolling', url: String(url) });
    }
    return super.open(method, url, ...rest);
  }

  send(body) {
    if (this._reportPost !== undefined) {
      const url = this._reportPost;
      this.addEventListener('loadend', () =>
        emit({ type: 'post', url, body: typeof body === 'string' ? body : null, code: this.status }),
      );
    }
    return super.send(body);
  }

  abort() {
    const active = this.readyState >= 1 && this.readyState <= 3 && this._request;
    super.abort();
    if (active) {
      this.status = 0;
      this._setReadyState(4);
      this.readyState = 0;
    }
  }
}
globalThis.XMLHttpRequest = BrowserXMLHttpRequest;

// Errors go to stderr; everything else the SDK logs is dropped. The shared
// config helper writes flags to localStorage, which Node lacks; that error is
// expected and not worth reporting.
class StderrLogger extends AbstractLogger {
  async log(level, message, context) {
    if (level < LogLevel.ERROR || message === 'localStorage undefined') {
      return;
    }
    let detail = '';
    if (context !== undefined) {
      try {
        detail = ' ' + JSON.stringify(context, (_, v) => (v instanceof Error ? String(v) : v));
      } catch {
        detail = ' ' + String(context);
      }
    }
    process.stderr.write(`sdk ${LogLevel[level]}: ${message}${detail}\n`);
  }
}

function buildConfig(o) {
  const now = Date.now();
  const channel = (id, type) => ({
    id,
    start: new Date(now - 3600e3).toISOString(),
    end: new Date(now + 12 * 3600e3).toISOString(),
    type,
  });
  const channels = { private: channel(o.channel, 'private') };
  if (o.shared_channel) {
    channels.shared = channel(o.shared_channel, 'shared');
  }
  return {
    api: { revision_web: 19, revision_mobile: 19 },
    channels,
    publicChannels: o.publicChannels ?? {},
    server: {
      version: o.version ?? 3,
      server_enabled: true,
      long_polling: o.long_polling,
      long_pooling_secure: o.long_polling,
      websocket: o.websocket,
      websocket_secure: o.websocket,
      websocket_enabled: o.websocket_enabled !== false,
      publish: o.publish ?? '',
      publish_secure: o.publish ?? '',
      publish_enabled: o.publish_enabled === true,
      mode: o.mode ?? 'personal',
      hostname: o.hostname ?? 'localhost',
      config_timestamp: 0,
    },
    clientId: o.clientId ?? null,
    jwt: o.jwt ?? null,
    exp: 0,
    serverTime: new Date().toISOString(),
  };
}

let options = JSON.parse(process.argv[2] ?? '{}');

// Calls the server's backend API as a web application's backend would.
async function backendCall(call, body) {
  const response = await fetch(options.backend.url + call, {
    method: 'POST',
    headers: { Authorization: `Bearer ${options.backend.key}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    throw new Error(`backend ${call}: ${response.status} ${await response.text()}`);
  }
  return response.json();
}

// The REST client the SDK asks for its config (pull.config.get), for watch
// extensions and for public channel ids.
const b24 = {
  actions: {
    v2: {
      call: {
        async make({ method, params }) {
          let result;
          switch (method) {
            case 'pull.config.get':
            case 'pull.application.config.get':
              result = options.backend
                ? await backendCall('config', { userId: options.userId ?? 1 })
                : buildConfig(options);
              break;
            case 'pull.watch.extend':
              // The client stops extending the tags listed here.
              result = options.backend
                ? (await backendCall('watch/extend', { userId: options.userId ?? 1, tags: params.tags })).unknown
                : [];
              break;
            default:
              result = {};
          }
          return { getData: () => ({ result }) };
        },
      },
    },
  },
};

const client = new B24PullClientManager({
  b24,
  userId: options.userId ?? 1,
  siteId: options.siteId ?? 's1',
  skipStorageInit: true,
});
client.setLogger(new StderrLogger());

// Report what the server delivered before the client drops the ids it has
// already seen, so a server that repeats a message is caught even though the
// application would not notice.
const handleIncomingEvents = client.handleIncomingEvents.bind(client);
client.handleIncomingEvents = (events) => {
  for (const event of events) {
    emit({ type: 'envelope', mid: event.mid ?? null, channel: event.channel ?? null });
  }
  return handleIncomingEvents(events);
};
const handleRpcIncomingMessage = client.handleRpcIncomingMessage.bind(client);
client.handleRpcIncomingMessage = (fields) => {
  emit({ type: 'envelope', mid: fields?.mid ?? null, channel: null });
  return handleRpcIncomingMessage(fields);
};

// Every module: the client announces each message it hands to applications
// through onCustomEvent (BX.onCustomEvent in the browser build); the pull
// module's own commands are handled internally and reported here too.
client.onCustomEvent = (name, args) => {
  switch (name) {
    case 'onPullEvent':
    case 'onPullClientEvent': {
      const [moduleId, command, params, extra] = args;
      emit({ type: 'message', moduleId, command, params, extra });
      break;
    }
    case 'onPullOnlineEvent': {
      const [command, params, extra] = args;
      emit({ type: 'message', moduleId: 'online', command, params, extra });
      break;
    }
  }
};
const handleInternalPullEvent = client.handleInternalPullEvent.bind(client);
client.handleInternalPullEvent = (command, message) => {
  emit({ type: 'message', moduleId: 'pull', command, params: message.params, extra: message.extra });
  return handleInternalPullEvent(command, message);
};

client.subscribe({
  type: SubscriptionType.Status,
  callback: (data) => emit({ type: 'status', status: data.status }),
});

const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
  const [command, ...rest] = line.trim().split(' ');
  switch (command) {
    case 'disconnect':
      fireWindowEvent('offline');
      break;
    case 'connect':
      fireWindowEvent('online');
      break;
    case 'config':
      options = JSON.parse(rest.join(' '));
      break;
    case 'publish':
    case 'publishbatch': {
      const p = JSON.parse(rest.join(' '));
      let sent;
      if (command === 'publishbatch') {
        const message = { body: { module_id: p.module, command: p.command, params: p.params ?? {} } };
        if (p.users) {
          message.userList = p.users;
        }
        if (p.channels) {
          message.channelList = p.channels;
        }
        sent = client.sendMessageBatch([message]);
      } else if (p.users) {
        sent = client.sendMessage(p.users, p.module, p.command, p.params ?? {});
      } else {
        sent = client.sendMessageToChannels(p.channels ?? [], p.module, p.command, p.params ?? {});
      }
      Promise.resolve(sent).then(
        () => emit({ type: 'published' }),
        (error) => emit({ type: 'publish_failed', error: String(error?.message ?? JSON.stringify(error)) }),
      );
      break;
    }
    case 'watch': {
      const userId = Number(rest[0]);
      client.subscribeUserStatusChange(userId, (status) =>
        emit({ type: 'user_status', userId: status.userId, isOnline: status.isOnline }),
      ).then(
        () => emit({ type: 'watching' }),
        (error) => emit({ type: 'error', error: 'watch: ' + JSON.stringify(error) }),
      );
      break;
    }
    case 'lastseen':
      client.getUsersLastSeen(JSON.parse(rest.join(' '))).then(
        (result) => emit({ type: 'lastseen', result }),
        (error) => emit({ type: 'error', error: 'lastseen: ' + JSON.stringify(error) }),
      );
      break;
    case 'stop':
      client.destroy();
      process.exit(0);
      break;
    case '':
      break;
    default:
      process.stderr.write(`unknown command ${JSON.stringify(command)}\n`);
  }
});
input.on('close', () => {
  client.destroy();
  process.exit(0);
});

emit({ type: 'ready' });
client.start().catch((error) => {
  emit({ type: 'error', error: String(error?.ex?.error_description ?? error?.message ?? error) });
});
