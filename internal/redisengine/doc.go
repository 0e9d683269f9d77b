// Package redisengine is the distributed engine: message history, ids,
// online status, process statistics and the fan-out between processes all
// live in Redis (standalone, behind Sentinel, or a Redis Cluster), so any
// number of publisher-only and subscriber processes can share one Redis.
//
// # Key layout
//
// On a standalone or Sentinel-managed Redis the keys are the original
// push server 1.0's (with Options.Layout "2.0" the 2.0's: see below), so a
// fleet can move to pushpull on the same Redis, and the two can even run
// side by side during the move:
//
//	message:<mid>             string, the message JSON, expires with the message
//	channel:<id>:messages     sorted set of mids, score 0, read by lexical range;
//	                          expires channelTTL after its first write
//	server:messagecounter     INCR: the counter part of every mid
//	server:startdate          SET NX: unix seconds, the first 10 digits of every mid
//	online:<channel id>       the channel id, expires onlineTTL + onlineDelta
//	stats                     hash: processUniqueId -> JSON process stats
//	pushserver:<process uid>  pub/sub channel a process publishes on; subscriber
//	                          processes PSUBSCRIBE pushserver:*
//
// pushpull adds, for protocol-5 users (connections with a token naming a
// user; see presence.go):
//
//	presence:<user>           sorted set of "<process uid>:<connection>", scored
//	                          with the unix ms until which each counts; every
//	                          process re-scores its own every onlineTTL
//	lastseen:<user>           unix seconds the user's last connection ended
//
// In the shared mode user and channel names carry "<clientId>|" in front.
//
// The message JSON is the original's: {"id":"<mid>","text":"<body>",
// "expiry":<s>,"channels":[...],"dateCreated":<ms>}, and it is also the
// pub/sub payload. pushpull adds "sender", "userParams" and "dictionary"
// when a message has them (protocols 4 and 5; see codec.go); the original
// ignores them.
//
// Where pushpull differs, and why:
//
//   - A publish is one Lua script (start date, INCR, SET, ZADD and expiry
//     of each index, PUBLISH) instead of separate commands, so ids are
//     handed out in the order messages are published and nothing is
//     published that was not stored. The publish route answers 200 only
//     after the script ran.
//   - Every process, the publishing one included, delivers to its own
//     subscribers only what it receives from pub/sub (the original
//     delivered its own messages directly and ignored its own channel), so
//     every process sees the same order. Processes of the original still
//     receive pushpull's messages and the other way round.
//   - Message keys and channel indexes get millisecond TTLs (PX, PEXPIRE)
//     where the original used seconds; the index TTL is still set once,
//     only while the index has none.
//   - Online keys are kept for every channel with subscribers on a process,
//     refreshed every onlineTTL for WebSocket and long-polling
//     subscribers alike; the original kept the first channel of each
//     WebSocket connection only.
//   - Options.Prefix puts every key and channel under a prefix (default
//     none), for several installations on one Redis.
//   - The push server 2.0 keeps binary ids and protobuf values under
//     other keys: Options.Layout "2.0" uses those instead (keys20.go,
//     codec20.go), so that pushpull and 2.0 processes can share a Redis.
//
// # The 2.0 layout
//
// With Options.Layout "2.0" the keys and values are the push server
// 2.0's (see keys20.go for the keys and codec20.go for the values):
// binary ids, protobuf OutgoingMessage values, a NotificationBatch on
// pub/sub, private and public channel indexes. A publish is still one
// script, which turns the id it takes into its binary form. Its stored
// messages name the channels (a field of pushpull's own, which the
// original skips); the original's do not, so a message read from an
// index takes the channels it was found in, and one recovered by id after
// a subscription gap is looked up in the indexes of the channels with
// subscribers on this process. The original takes an id before it stores
// and publishes the message, in separate calls, so its processes can
// publish out of id order: a live message that comes after a missing id
// waits up to Options.ReorderWindow for it.
//
// # Redis Cluster
//
// Multi-key scripts cannot span hash slots, so in a cluster every key and
// the pub/sub channel carry the hash tag {pushpull} (or the one in Prefix):
// one slot holds everything and a publish stays one atomic script, with
// the same ordering and recovery as on a single Redis. Fan-out uses
// sharded pub/sub (SPUBLISH and SSUBSCRIBE on <prefix>{pushpull}pushserver),
// served by the slot's master rather than broadcast to every node. A
// cluster thus brings failover and managed deployments, not write scaling:
// all load is on one master.
//
// With Options.Tags TagsInstallation, each shared-mode installation
// (clientId) has keys, an id counter and a sharded channel of its own
// under the hash tag {<clientId>} (keys.go, layout.in), so installations
// spread over the masters while each one's publishes stay one script in
// one slot. A process subscribes once per master for the installations
// that master serves and follows failovers and slot moves (cluster.go).
// Ids are checked per installation: a live message after a gap waits
// while the missing ids are read back from storage (subscriber.repairLocked).
// Options.WaitReplicas answers a publish only once replicas hold it.
//
// # Delivery
//
// Pub/sub delivers each message at most once and nothing while a
// subscription is down. After every subscription a process reads the
// counter and fetches, by id, every message between the last one it
// delivered and the counter, and delivers them before what pub/sub
// brought meanwhile: with Redis's data intact, each message reaches every
// subscriber process exactly once, in id order. A gap beyond
// Options.GapLimit calls Options.OnResync, which closes local connections
// so clients resume from their last mid. Ready fails from the moment a
// subscription is lost until the next one is recovered.
//
// A subscription can also go silent: its socket open and answering, but
// delivering nothing (a proxy or a failover that dropped it). Each
// process therefore sends itself a probe every Options.ProbeInterval on
// <prefix>pushpull:probe:<processUniqueId> (SUBSCRIBE beside the pattern;
// in a cluster SSUBSCRIBE in the same slot). A probe not back within
// Options.ProbeTimeout turns readiness red, closes the connection and
// subscribes anew, recovering the gap as above. A session never sends a
// message at or below the last one it sent, so history a client read at
// connect time and the same messages coming again through the recovery
// reach it once.
//
// # Durability
//
// What Redis loses, nobody can replay. For no accepted message to be lost
// across a Redis restart, run Redis with appendonly yes and appendfsync
// always: a publish is acknowledged only once it is on disk. appendfsync
// everysec may lose the last second of accepted messages on a crash, RDB
// snapshots everything since the last one, and a Sentinel failover what
// had not reached the replica. After Redis came back from an older
// snapshot, the counter is raised back to the last id this process
// delivered, so that ids are not handed out twice. Right after a restart
// the first command on each pooled connection may fail, as the client
// finds a connection dead only by using it: such a publish is answered
// with an error, and the backend's retry succeeds.
package redisengine
