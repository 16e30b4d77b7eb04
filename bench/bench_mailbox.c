/* Mailbox benchmark.
 *
 * 1. backlog (simulator, virtual time): six supernodes, 10 ms links with 3 ms jitter; bob
 *    goes offline, alice sends N messages (one every 5 ms); once every one shows "stored"
 *    alice goes offline too (so nothing arrives by her direct retries), bob comes back,
 *    and we measure the virtual time until bob holds all N in his history (all out of
 *    the mailbox); then alice comes back and we measure until she sees all N delivered
 *    (bob's receipts wait in her mailbox). Plus the supernodes' mailbox bytes per stored
 *    envelope. "Comes back" = waking a suspended host (the same fetch as an attachment).
 *    The wall-clock CPU time of the whole simulated run is printed too.
 * 2. replica accept rate (CPU, one thread): what a replica does per MB_STORE — decode the
 *    envelope, check the sender certificate's root signature, check the pass (Ed25519),
 *    store it, sign the receipt — over a fresh in-memory store, N entries into one
 *    mailbox. No sockets, no Noise; those are the Noise benchmark's.
 *
 * Output: JSON lines {"bench":"mailbox","figure":...,"value":...,"unit":...}
 * Usage: bench-mailbox [backlog N (default 1000)] [accept N (default 20000)] */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "overlay/mbstore.h"
#include "scenario.h"
#include "wire/mbox.h"

static double wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fig(const char *name, double v, const char *unit)
{
	printf("{\"bench\":\"mailbox\",\"figure\":\"%s\",\"value\":%.3f,\"unit\":\"%s\"}\n", name, v,
	       unit);
	fflush(stdout);
}

/* messages of history(with) in state `state` (NULL: any) whose text starts "b " */
static unsigned hist_count(struct sc_net *n, int i, const char *with, const char *state)
{
	struct sc_reply r;
	json_t *args = json_pack("{s:s,s:i}", "with", with, "limit", 1000);
	unsigned c = 0;

	if (!sc_call(n, i, "history", args, &r, 1000) || r.err)
		return 0;
	json_t *a = json_object_get(r.result, "messages");
	for (size_t k = 0; k < json_array_size(a); k++) {
		json_t *m = json_array_get(a, k);
		const char *t = json_string_value(json_object_get(m, "text"));
		if (!t || strncmp(t, "b ", 2) != 0)
			continue;
		if (!state || strcmp(json_string_value(json_object_get(m, "state")), state) == 0)
			c++;
	}
	sc_reply_clear(&r);
	return c;
}

static void backlog(unsigned count)
{
	struct sc_net n;
	struct pn_sim_link base = {.delay_ms = 10, .jitter_ms = 3};
	struct sc_reply r;
	uint64_t t0, t_recv = 0, t_dlv = 0, bytes = 0, entries = 0;
	double w0 = wall();
	char text[32];

	if (sc_net_init_multi(&n, 9090, &base, 6))
		exit(1);
	if (sc_net_add_client_at(&n, "198.18.1.1:5000", 0) != 0 ||
	    sc_net_add_client_at(&n, "198.18.1.2:5000", 1) != 1)
		exit(1);
	sc_up_user(&n, 0, "alice");
	sc_up_user(&n, 1, "bob");
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 5000);
	sc_call(&n, 0, "contacts.add", sc_args2("username", "bob", NULL, NULL), &r, 1000);
	sc_reply_clear(&r);
	sc_call(&n, 1, "contacts.add", sc_args2("username", "alice", NULL, NULL), &r, 1000);
	sc_reply_clear(&r);
	sc_exchange(&n, 0, 1, "bob", "hello");
	sc_exchange(&n, 1, 0, "alice", "hello");
	pn_sim_host_set_up(n.client_hosts[1], false);
	for (unsigned i = 0; i < count; i++) {
		snprintf(text, sizeof(text), "b %05u", i);
		sc_call(&n, 0, "send", sc_args2("to", "bob", "text", text), &r, 1000);
		sc_reply_clear(&r);
		pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 5);
	}
	for (int t = 0; t < 600 && hist_count(&n, 0, "bob", "stored") < count; t++)
		pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 1000);
	fprintf(stderr, "stored: %u of %u\n", hist_count(&n, 0, "bob", "stored"), count);
	for (unsigned i = 0; i < n.n_sns; i++) {
		struct pn_supernode_stats st;
		pn_supernode_stats(n.sns[i], &st);
		bytes += st.mb_bytes;
		entries += st.mb_entries;
	}
	/* alice leaves, bob comes back */
	pn_sim_host_set_up(n.client_hosts[0], false);
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 40000);
	t0 = pn_sim_now(n.sim);
	pn_sim_host_set_up(n.client_hosts[1], true);
	for (int t = 0; t < 6000 && !t_recv; t++) {
		pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 100);
		if (hist_count(&n, 1, "alice", NULL) >= count)
			t_recv = pn_sim_now(n.sim) - t0;
	}
	/* alice comes back: bob's receipts are in her mailbox */
	pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 10000);
	t0 = pn_sim_now(n.sim);
	pn_sim_host_set_up(n.client_hosts[0], true);
	for (int t = 0; t < 6000 && !t_dlv; t++) {
		pn_sim_run_until(n.sim, pn_sim_now(n.sim) + 100);
		if (hist_count(&n, 0, "bob", "delivered") >= count)
			t_dlv = pn_sim_now(n.sim) - t0;
	}
	fprintf(stderr, "received %u, delivered %u\n", hist_count(&n, 1, "alice", NULL),
		hist_count(&n, 0, "bob", "delivered"));
	{
		/* how many came out of the mailbox (the rest came by alice's direct retries) */
		json_int_t via = 0;
		if (sc_call(&n, 1, "status", NULL, &r, 1000) && !r.err)
			via = json_integer_value(json_object_get(json_object_get(r.result, "mailbox"),
								 "received"));
		sc_reply_clear(&r);
		fig("backlog_via_mailbox", (double)via, "messages");
	}
	fig("backlog_messages", count, "messages");
	fig("attach_to_all_received_ms", (double)t_recv, "ms");
	fig("sender_back_to_all_delivered_ms", (double)t_dlv, "ms");
	fig("stored_envelope_bytes", entries ? (double)bytes / (double)entries : 0, "bytes");
	fig("stored_entries_per_message", (double)entries / count, "entries");
	fig("backlog_sim_cpu_s", wall() - w0, "s");
	sc_net_free(&n);
}

static int seed_keys(struct pn_keys *k, uint8_t b)
{
	uint8_t s[32];
	memset(s, b, sizeof(s));
	return pn_keys_from_seed(k, s);
}

static void accept_rate(unsigned count)
{
	struct pn_keys root, alice, bob, sn;
	struct pn_cert c, cb;
	uint8_t ca[PN_CERT_MAX], env[PN_MB_ENV_MAX], pass[PN_MB_PASS_LEN], inner[600], rc[PN_MB_RECEIPT_MAX];
	uint8_t (*envs)[PN_MB_ENV_MAX] = malloc((size_t)count * PN_MB_ENV_MAX);
	size_t *lens = malloc(count * sizeof(*lens));
	struct pn_mbstore *s;
	struct pn_mbs_stats st;
	double t0, t;
	int cl;

	if (!envs || !lens || seed_keys(&root, 1) || seed_keys(&alice, 2) || seed_keys(&bob, 4) ||
	    seed_keys(&sn, 5))
		exit(1);
	memset(&c, 0, sizeof(c));
	c.flags = PN_CERT_DEVICE;
	strcpy(c.name, "alice");
	memcpy(c.sign_pk, alice.sign_pk, 32);
	memcpy(c.dh_pk, alice.dh_pk, 32);
	c.not_before = 1700000000;
	c.not_after = 1700086400;
	pn_cert_sign(&c, root.sign_sk);
	cl = pn_cert_encode(&c, ca, sizeof(ca));
	cb = c;
	strcpy(cb.name, "bob");
	memcpy(cb.sign_pk, bob.sign_pk, 32);
	pn_cert_sign(&cb, root.sign_sk);
	pn_mb_pass_sign(pass, "bob", "alice", 1709000000, &bob, cb.device_id);
	memset(inner, 'x', sizeof(inner));
	inner[0] = 0x40;
	for (unsigned i = 0; i < count; i++) {
		uint8_t id[16];
		randombytes_buf(id, sizeof(id));
		int n = pn_mb_env_seal(envs[i], PN_MB_ENV_MAX, PN_MB_CHAT, id, cb.device_id, bob.dh_pk,
				       1702000000, ca, (size_t)cl, &alice, inner, 200);
		if (n < 0)
			exit(1);
		lens[i] = (size_t)n;
	}
	pn_mbstore_new(&s);
	t0 = wall();
	for (unsigned i = 0; i < count; i++) {
		struct pn_mb_env e;
		struct pn_mbs_entry ent;
		uint8_t mid[32];
		if (pn_mb_env_decode(&e, envs[i], lens[i]) ||
		    pn_mb_cert_was_valid(&e.sender, root.sign_pk, PN_CERT_DEVICE) ||
		    pn_mb_pass_verify(pass, "bob", e.sender.name, bob.sign_pk, 1700001000))
			exit(1);
		memset(&ent, 0, sizeof(ent));
		memcpy(ent.id, e.entry_id, 16);
		memcpy(ent.to_dev, e.to_dev, 16);
		ent.expires = e.expires;
		ent.env = envs[i];
		ent.len = lens[i];
		ent.contact = true;
		ent.pass = pass;
		if (pn_mbstore_put(s, "bob", &ent, "alice", 1700001000) && i < PN_MBS_CONTACT_MAX)
			exit(1);
		pn_mb_key(mid, "bob");
		if (pn_mb_receipt_sign(rc, sizeof(rc), &sn, NULL, 0, mid, e.entry_id, e.expires) < 0)
			exit(1);
	}
	t = wall() - t0;
	pn_mbstore_stats(s, &st);
	(void)env;
	fig("replica_accept_per_s", count / t, "messages/s");
	fig("replica_accept_us", t / count * 1e6, "us");
	fig("envelope_bytes_200_char_text", (double)lens[0], "bytes");
	pn_mbstore_free(s);
	free(envs);
	free(lens);
}

int main(int argc, char **argv)
{
	unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 1000;
	unsigned a = argc > 2 ? (unsigned)atoi(argv[2]) : 20000;

	if (sodium_init() < 0)
		return 1;
	accept_rate(a);
	backlog(n);
	return 0;
}
