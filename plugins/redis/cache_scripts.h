// The Lua scripts that keep a guest's Redis keys coherent with the store.
//
// Every script takes KEYS[1] = the guest's array (`guest:ID`, a JSON array
// any client can GET) and KEYS[2] = its version record
// (`guest:{guest:ID}:version`, a hash under the same key prefix, so that a
// Redis user granted `~guest:*` may use both, and in the same Redis Cluster
// slot: its hash tag is the array's name; see ChatStore::Keys).
// The version record's fields:
//   v        how many messages the array holds, which is the store's
//            `sequence` of the next message. Present only while the array
//            is exactly the store's history of the guest: a read serves the
//            array only then. A key with no `v` beside it (written by another
//            client, or before the version record existed) is a miss, never
//            served, whatever it holds; the refill replaces it.
//   l        the lease of a refill: the token of the last read that missed.
//            Any change voids it, so a refill made of data read before the
//            change is refused.
//   d        the array was dropped: it is behind the store until a refill
//            stores the store's history (or an erase empties it). Set by
//            every drop while the record exists; it stops a late write of
//            the guest's first message from creating an array that lacks
//            the later messages that settled (and dropped it) first.
//   w:TOKEN  a write in flight (prepared before its COMMIT), e:TOKEN an
//            erase in flight, t:TOKEN a write prepared while an erase was in
//            flight (it will not extend the array). The value is the time
//            (ms since the epoch, the Redis server's clock) at which the
//            mark lapses. While a change is in flight the array is not
//            served; one that lapsed was never settled (its writer was
//            killed, or its COMMIT's answer lost), so the array is dropped:
//            it may lack that change.
//
// Each script is one atomic step on the server. The constants below are
// their bodies: run CacheScript(body), which puts the shared helpers first.
#pragma once

#include <string>

namespace stowage::redis {

// The shared helpers followed by `body`.
std::string CacheScript(const char* body);

// A read. ARGV: the reader's lease token, the lease's lifetime in seconds,
// and the page asked for (SDK 1.5, stowage::ReadRange): `before` and
// `limit`, each empty for none. First unmarks the lapsed changes and, if
// any, drops the array. Returns {1, page, v} when the array may be served
// (`v` is present): the entries [max(0, min(before, v) - limit),
// min(before, v)) as a JSON array, read a slice at a time (the whole value
// when the page is all of it), and v, the guest's message count. {0} for a
// miss (the lease is taken: a refill may follow), {2} when a change is in
// flight (a miss; no refill may follow). A key that `v` vouches for but that
// holds fewer entries than `v` is dropped (a miss). An error reply when `v`
// vouches for a key that is not a string.
extern const char* const kReadScript;

// Marks a write in flight before its COMMIT. ARGV: the change token, its
// lifetime in ms, the version record's TTL in seconds. Voids the lease.
// Returns 1.
extern const char* const kPrepareScript;

// Settles a write after its COMMIT. ARGV: the change token (may be empty:
// no store behind, see below), the message's sequence (empty when the
// pipeline has no store that numbers messages), the encoded entry, the
// array's TTL in seconds, the version record's TTL in seconds.
// - With a sequence: appends the entry when the change is still marked (no
//   erase replaced its mark), no other mark lapsed, and the array holds
//   exactly the messages before it (v = sequence); or creates the array
//   (replacing whatever the key held) when the message is the guest's first
//   (sequence 0) and no drop came since the last refill or erase (no `d`);
//   otherwise drops the array, so the next read refills it.
// - Without one (Redis is the store): appends, creating the array; refuses
//   (error reply naming the key) a key that is not a string shaped "[...]",
//   leaving it as it is.
// Unmarks the change; when the entry was stored, renews the TTL of both
// keys. Returns {1, bytes} when the entry was stored, {0, 0} when the array
// was dropped.
extern const char* const kApplyScript;

// Settles a write whose COMMIT did not happen. ARGV: the change token, "1"
// when the COMMIT's outcome is unknown. Rolled back: unmarks the change.
// Unknown: drops the array and keeps the mark until it lapses, since the
// change may still land. Returns 1.
extern const char* const kAbandonScript;

// Stores the store's history read after a miss. ARGV: the lease token, the
// encoded array, its message count, the TTL in seconds, the version
// record's TTL in seconds. Stores only while the lease holds and no change
// is in flight or lapsed; then sets `v`, clears `l` and `d`. Returns 1 when
// stored.
extern const char* const kRefillScript;

// Begins an erase, before the store erases. ARGV: the change token, its
// lifetime in ms, the version record's TTL in seconds. Drops the array,
// voids the lease, and replaces every write mark by its own (those writes
// are settled before the store's erase can commit). Returns 1 when the
// array existed.
extern const char* const kBeginEraseScript;

// Finishes an erase once the store's erase committed or rolled back. ARGV:
// the change token (may be empty: no store behind). Drops the array, clears
// `d` (the guest's next first message may create the array), unmarks the
// change, and deletes the version record when nothing is left in it.
// Returns 1 when the array existed.
extern const char* const kFinishEraseScript;

// Removes the last occurrence of one encoded entry from a guest's array,
// keeping the array valid and the key's TTL, and counting it out of `v`;
// deletes the key and `v` when no entry is left
// (compensation, when Redis is the store). ARGV: the encoded entry.
// Returns 1 when it removed the entry, 0 when the entry was not there.
extern const char* const kRemoveScript;

// Drops the array (a change this process could not settle). Returns 1.
extern const char* const kDropScript;

}  // namespace stowage::redis
