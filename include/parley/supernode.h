/* The supernode (sans-I/O): attaches clients over Noise sessions (device certificate
 * checked against the network root), keeps their signed reachability records, answers
 * lookups and forwards end-to-end encrypted envelopes between attached devices. The
 * distributed directory (Kademlia across supernodes) slots in behind the record store. */
#ifndef PARLEY_SUPERNODE_H
#define PARLEY_SUPERNODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parley/env.h"
#include "parley/network.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pn_supernode;

struct pn_supernode_config {
	const struct pn_env *env;
	const struct pn_network *net;
	uint8_t seed[32];          /* the supernode's key seed (secret) */
	const uint8_t *cert;       /* its certificate from the root (encoded) */
	size_t cert_len;
	struct pn_addr public_addr; /* the address clients reach it at */
	uint32_t max_clients;      /* 0 = 10000 */
	uint32_t kad_per_prefix;   /* overlay contacts per /24 or /48 per bucket; 0 = 2 */
	uint32_t kad_k;            /* k-bucket size; 0 = 256 (large: supernodes are few) */
	/* Disjoint paths per overlay lookup (S/Kademlia; 1..4, 0 = 1): a node is asked by at
	 * most one path, so liars and droppers spoil only the paths they are on. */
	uint32_t lookup_paths;
	/* SQLite file the mailboxes are kept in (loaded at start, written through), or NULL
	 * for memory only */
	const char *mailbox_db;
	/* Simulation only: make this supernode an attacker in the overlay.
	 * PN_SN_HONEST, PN_SN_DROP (never answers overlay requests, stores nothing),
	 * PN_SN_LIE (answers FIND_VALUE with far-away nodes instead of the records it holds,
	 * acknowledges STOREs without storing). */
	int misbehave;
};

enum { PN_SN_HONEST = 0, PN_SN_DROP = 1, PN_SN_LIE = 2 };

/* Per-lookup figures for simulations: called when an overlay lookup a client asked for
 * ends (found or not), with the hop count of the lookup. NULL to disable. */
void pn_supernode_set_lookup_hook(struct pn_supernode *sn,
				  void (*hook)(void *arg, bool found, unsigned hops, uint64_t ms),
				  void *arg);

int pn_supernode_new(struct pn_supernode **out, const struct pn_supernode_config *cfg);
void pn_supernode_free(struct pn_supernode *sn);
extern const struct pn_node_ops pn_supernode_ops;

struct pn_supernode_stats {
	uint64_t clients, records, lookups, forwarded, forward_bytes, bad_packets,
		rejected_certs, replays, rate_limited;
	/* overlay */
	uint64_t peers, overlay_lookups, overlay_stores, sn_forwarded, lookup_hops_total,
		lookups_done;
	/* STUN Binding requests answered, and well-formed STUN dropped unanswered (the
	 * answer would have been larger than the request, or it was no request) */
	uint64_t stun_answered, stun_dropped;
	/* mailboxes (docs/PROTOCOL.md "Mailboxes"): what this supernode holds, and what it
	 * refused: malformed or forged envelopes and acknowledgements, acknowledgements
	 * replayed, deposits over a quota, passes it could not check */
	uint64_t mb_mailboxes, mb_entries, mb_bytes, mb_stored, mb_duplicates, mb_deleted,
		mb_expired, mb_fetches, mb_bad_envelopes, mb_bad_acks, mb_replays,
		mb_quota_refused, mb_pass_unknown, mb_oversized, mb_replicated;
	uint64_t contacts; /* routing-table contacts now (k-buckets, not the replacement caches) */
	uint64_t self_test; /* PN_SN_SELFTEST_*: open policy, the capable-node self-test */
};
/* An uncertified supernode of an open network serves (takes clients, joins the overlay)
 * only after a supernode of the network file saw its datagrams come from its configured
 * public address (STUN). Certified supernodes skip it (NONE). */
enum { PN_SN_SELFTEST_NONE = 0, PN_SN_SELFTEST_PENDING, PN_SN_SELFTEST_PASSED,
       PN_SN_SELFTEST_FAILED };
void pn_supernode_stats(const struct pn_supernode *sn, struct pn_supernode_stats *st);
/* Entries of owner's mailbox this supernode holds (all of the owner's devices). */
size_t pn_supernode_mailbox_entries(const struct pn_supernode *sn, const char *owner);
/* Test hook: called with every envelope payload the supernode forwards (for asserting that
 * it sees only ciphertext). NULL to disable. */
void pn_supernode_set_forward_hook(struct pn_supernode *sn,
				   void (*hook)(void *arg, const uint8_t *buf, size_t len),
				   void *arg);

#ifdef __cplusplus
}
#endif
#endif
