/* Unit tests for the mailbox formats (src/wire/mbox.c) and the supernode's mailbox store
 * (src/overlay/mbstore.c): round trips, every forgery and truncation we can think of, the
 * quotas (a non-contact cannot crowd out a contact), tombstones, expiry, the replay guard,
 * and the envelope test vector of docs/PROTOCOL.md. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/hex.h"
#include "crypto/cert.h"
#include "crypto/keys.h"
#include "overlay/mbstore.h"
#include "wire/mbox.h"

enum { T_NB = 1700000000, T_NA = 1700086400, T_NOW = 1700001000, T_EXP = 1702593000 };

struct fx {
	struct pn_keys root, alice, bob, sn;
	struct pn_cert ca, cb, cs;
	uint8_t ca_raw[PN_CERT_MAX], cb_raw[PN_CERT_MAX], cs_raw[PN_CERT_MAX];
	size_t ca_len, cb_len, cs_len;
};

static void seed_keys(struct pn_keys *k, uint8_t byte)
{
	uint8_t seed[PN_SEED];

	memset(seed, byte, sizeof(seed));
	assert_int_equal(pn_keys_from_seed(k, seed), 0);
}

static size_t cert_for(struct pn_cert *c, uint8_t *raw, const struct pn_keys *root,
		       const struct pn_keys *k, const char *name, uint8_t flags)
{
	int n;

	memset(c, 0, sizeof(*c));
	c->flags = flags;
	strcpy(c->name, name);
	memcpy(c->sign_pk, k->sign_pk, PN_SIGN_PK);
	memcpy(c->dh_pk, k->dh_pk, PN_DH_PK);
	c->not_before = T_NB;
	c->not_after = T_NA;
	assert_int_equal(pn_cert_sign(c, root->sign_sk), 0);
	n = pn_cert_encode(c, raw, PN_CERT_MAX);
	assert_true(n > 0);
	return (size_t)n;
}

static void fx_init(struct fx *f)
{
	seed_keys(&f->root, 0x01);
	seed_keys(&f->alice, 0x02);
	seed_keys(&f->bob, 0x04);
	seed_keys(&f->sn, 0x05);
	f->ca_len = cert_for(&f->ca, f->ca_raw, &f->root, &f->alice, "alice", PN_CERT_DEVICE);
	f->cb_len = cert_for(&f->cb, f->cb_raw, &f->root, &f->bob, "bob", PN_CERT_DEVICE);
	f->cs_len = cert_for(&f->cs, f->cs_raw, &f->root, &f->sn, "sn1", PN_CERT_SUPERNODE);
}

static const uint8_t inner_chat[] = {0x40, 'h', 'i'};

static size_t seal_to_bob(struct fx *f, uint8_t *out, size_t cap, const uint8_t entry[16])
{
	int n = pn_mb_env_seal(out, cap, PN_MB_CHAT, entry, f->cb.device_id, f->bob.dh_pk, T_EXP,
			       f->ca_raw, f->ca_len, &f->alice, inner_chat, sizeof(inner_chat));
	assert_true(n > 0);
	return (size_t)n;
}

static void envelope_roundtrip_and_forgeries(void **state)
{
	struct fx f;
	uint8_t env[PN_MB_ENV_MAX], pt[PN_MB_ENV_MAX], entry[16];
	struct pn_mb_env e;
	size_t n, pl;

	(void)state;
	fx_init(&f);
	memset(entry, 0x11, 16);
	n = seal_to_bob(&f, env, sizeof(env), entry);
	assert_int_equal(n, 1 + 1 + 16 + 16 + 8 + 2 + f.ca_len + 2 + sizeof(inner_chat) + 16);
	assert_int_equal(pn_mb_env_decode(&e, env, n), 0);
	assert_int_equal(e.kind, PN_MB_CHAT);
	assert_memory_equal(e.entry_id, entry, 16);
	assert_memory_equal(e.to_dev, f.cb.device_id, 16);
	assert_true(e.expires == T_EXP);
	assert_string_equal(e.sender.name, "alice");
	assert_int_equal(pn_mb_cert_was_valid(&e.sender, f.root.sign_pk, PN_CERT_DEVICE), 0);
	assert_int_equal(pn_mb_env_open(&e, env, &f.bob, pt, sizeof(pt), &pl), 0);
	assert_int_equal(pl, sizeof(inner_chat));
	assert_memory_equal(pt, inner_chat, pl);
	/* not for the supernode, nor for alice herself */
	assert_int_equal(pn_mb_env_open(&e, env, &f.sn, pt, sizeof(pt), &pl), -EBADMSG);
	/* every byte of the header and the ciphertext is authenticated (flipping a byte of
	 * the certificate changes either its parse, or the key, or the associated data) */
	for (size_t i = 0; i < n; i++) {
		uint8_t t[PN_MB_ENV_MAX];
		memcpy(t, env, n);
		t[i] ^= 0x01;
		if (pn_mb_env_decode(&e, t, n) == 0)
			assert_int_equal(pn_mb_env_open(&e, t, &f.bob, pt, sizeof(pt), &pl), -EBADMSG);
	}
	/* every truncation, and a trailing byte, is malformed */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(pn_mb_env_decode(&e, env, i), -EBADMSG);
	env[n] = 0;
	assert_int_equal(pn_mb_env_decode(&e, env, n + 1), -EBADMSG);
	/* a certificate from another root does not pass */
	{
		struct pn_keys other;
		seed_keys(&other, 0x09);
		assert_int_not_equal(pn_mb_cert_was_valid(&e.sender, other.sign_pk, PN_CERT_DEVICE), 0);
	}
	/* too large to seal */
	{
		static uint8_t big[PN_MB_ENV_MAX];
		assert_int_equal(pn_mb_env_seal(env, sizeof(env), PN_MB_CHAT, entry, f.cb.device_id,
						f.bob.dh_pk, T_EXP, f.ca_raw, f.ca_len, &f.alice, big,
						sizeof(big)),
				 -ENOSPC);
	}
}

/* docs/PROTOCOL.md "Mailbox test vector": keys from seeds 01 (root), 02 (alice), 04 (bob),
 * entry id 11..11, "hi" in a CHAT frame. The ciphertext's hash is pinned here; the
 * document lists the full bytes. */
static void envelope_vector(void **state)
{
	struct fx f;
	uint8_t env[PN_MB_ENV_MAX], entry[16], h[32];
	char hex[2 * PN_MB_ENV_MAX + 1];
	size_t n;

	(void)state;
	fx_init(&f);
	memset(entry, 0x11, 16);
	n = seal_to_bob(&f, env, sizeof(env), entry);
	crypto_generichash(h, sizeof(h), env, n, NULL, 0);
	pn_hex_encode(hex, sizeof(hex), env + n - sizeof(inner_chat) - 16, sizeof(inner_chat) + 16);
	assert_string_equal(hex, "697cdd06b3a8ce5f8cc8ccf636c34fbefd4061");
	pn_hex_encode(hex, sizeof(hex), env, 34);
	printf("  vector head %s\n", hex);
	pn_hex_encode(hex, sizeof(hex), h, 32);
	assert_string_equal(hex, "efdc9b69dbc0d5f33eb74231f8c31517bb05c92be9625b505fb72504b4476d1f");
}

static void receipt_sign_verify(void **state)
{
	struct fx f;
	uint8_t r[PN_MB_RECEIPT_MAX], mid[32], entry[16], signer[32];
	uint64_t exp = 0;
	int n;

	(void)state;
	fx_init(&f);
	pn_mb_key(mid, "bob");
	memset(entry, 0x22, 16);
	n = pn_mb_receipt_sign(r, sizeof(r), &f.sn, f.cs_raw, f.cs_len, mid, entry, T_EXP);
	assert_true(n > 0);
	assert_int_equal(pn_mb_receipt_verify(r, (size_t)n, f.root.sign_pk, false, T_NOW, mid, entry,
					      &exp, signer), 0);
	assert_true(exp == T_EXP);
	assert_memory_equal(signer, f.sn.sign_pk, 32);
	/* for another entry or mailbox: refused */
	entry[0] ^= 1;
	assert_int_equal(pn_mb_receipt_verify(r, (size_t)n, f.root.sign_pk, false, T_NOW, mid, entry,
					      NULL, signer), -EBADMSG);
	entry[0] ^= 1;
	/* any flipped byte is refused */
	for (int i = 0; i < n; i++) {
		r[i] ^= 0x40;
		assert_int_not_equal(pn_mb_receipt_verify(r, (size_t)n, f.root.sign_pk, false, T_NOW,
							  mid, entry, NULL, signer), 0);
		r[i] ^= 0x40;
	}
	for (int i = 0; i < n; i++)
		assert_int_not_equal(pn_mb_receipt_verify(r, (size_t)i, f.root.sign_pk, false, T_NOW,
							  mid, entry, NULL, signer), 0);
	/* signed by a device, not a supernode: refused */
	n = pn_mb_receipt_sign(r, sizeof(r), &f.alice, f.ca_raw, f.ca_len, mid, entry, T_EXP);
	assert_int_equal(pn_mb_receipt_verify(r, (size_t)n, f.root.sign_pk, false, T_NOW, mid, entry,
					      NULL, signer), -EPERM);
	/* without a certificate: only on an open network */
	n = pn_mb_receipt_sign(r, sizeof(r), &f.sn, NULL, 0, mid, entry, T_EXP);
	assert_int_equal(pn_mb_receipt_verify(r, (size_t)n, f.root.sign_pk, false, T_NOW, mid, entry,
					      NULL, signer), -EPERM);
	assert_int_equal(pn_mb_receipt_verify(r, (size_t)n, f.root.sign_pk, true, T_NOW, mid, entry,
					      NULL, signer), 0);
}

static void ack_sign_verify(void **state)
{
	struct fx f;
	uint8_t a[PN_MB_ACK_MAX], ids[PN_MB_ACK_IDS + 1][16];
	struct pn_mb_ack d;
	int n;

	(void)state;
	fx_init(&f);
	for (int i = 0; i <= PN_MB_ACK_IDS; i++)
		memset(ids[i], i + 1, 16);
	n = pn_mb_ack_sign(a, sizeof(a), "bob", f.cb_raw, f.cb_len, &f.bob, 12345,
			   (const uint8_t (*)[16])ids, PN_MB_ACK_IDS);
	assert_true(n > 0 && (size_t)n <= PN_MB_ACK_MAX);
	assert_int_equal(pn_mb_ack_verify(&d, a, (size_t)n, f.root.sign_pk, T_NOW), 0);
	assert_int_equal(d.n, PN_MB_ACK_IDS);
	assert_true(d.ts_ms == 12345);
	assert_memory_equal(d.ids[PN_MB_ACK_IDS - 1], ids[PN_MB_ACK_IDS - 1], 16);
	assert_memory_equal(d.cert.device_id, f.cb.device_id, 16);
	assert_int_equal(pn_mb_ack_sign(a, sizeof(a), "bob", f.cb_raw, f.cb_len, &f.bob, 1,
					(const uint8_t (*)[16])ids, PN_MB_ACK_IDS + 1),
			 -EINVAL);
	/* any flipped byte fails */
	for (int i = 0; i < n; i++) {
		a[i] ^= 0x08;
		assert_int_not_equal(pn_mb_ack_verify(&d, a, (size_t)n, f.root.sign_pk, T_NOW), 0);
		a[i] ^= 0x08;
	}
	for (int i = 0; i < n; i++)
		assert_int_not_equal(pn_mb_ack_verify(&d, a, (size_t)i, f.root.sign_pk, T_NOW), 0);
	/* alice acknowledging (deleting) entries of bob's mailbox with her own device: refused */
	n = pn_mb_ack_sign(a, sizeof(a), "bob", f.ca_raw, f.ca_len, &f.alice, 1,
			   (const uint8_t (*)[16])ids, 1);
	assert_int_equal(pn_mb_ack_verify(&d, a, (size_t)n, f.root.sign_pk, T_NOW), -EPERM);
	/* bob's certificate, signed with alice's key: refused */
	n = pn_mb_ack_sign(a, sizeof(a), "bob", f.cb_raw, f.cb_len, &f.alice, 1,
			   (const uint8_t (*)[16])ids, 1);
	assert_int_equal(pn_mb_ack_verify(&d, a, (size_t)n, f.root.sign_pk, T_NOW), -EBADMSG);
	/* an expired certificate: refused */
	n = pn_mb_ack_sign(a, sizeof(a), "bob", f.cb_raw, f.cb_len, &f.bob, 1,
			   (const uint8_t (*)[16])ids, 1);
	assert_int_equal(pn_mb_ack_verify(&d, a, (size_t)n, f.root.sign_pk, T_NA + 1), -EKEYEXPIRED);
}

static void pass_sign_verify(void **state)
{
	struct fx f;
	uint8_t p[PN_MB_PASS_LEN], dev[16];

	(void)state;
	fx_init(&f);
	pn_mb_pass_sign(p, "bob", "alice", T_EXP, &f.bob, f.cb.device_id);
	pn_mb_pass_signer(p, dev);
	assert_memory_equal(dev, f.cb.device_id, 16);
	assert_int_equal(pn_mb_pass_verify(p, "bob", "alice", f.bob.sign_pk, T_NOW), 0);
	assert_int_equal(pn_mb_pass_verify(p, "bob", "carol", f.bob.sign_pk, T_NOW), -EBADMSG);
	assert_int_equal(pn_mb_pass_verify(p, "bob", "alice", f.alice.sign_pk, T_NOW), -EBADMSG);
	assert_int_equal(pn_mb_pass_verify(p, "bob", "alice", f.bob.sign_pk, T_EXP + 1), -EKEYEXPIRED);
	p[10] ^= 1;
	assert_int_equal(pn_mb_pass_verify(p, "bob", "alice", f.bob.sign_pk, T_NOW), -EBADMSG);
}

static struct pn_mbs_entry ent(uint8_t id, uint8_t dev, bool contact, uint64_t exp)
{
	static uint8_t buf[256][100];
	struct pn_mbs_entry e;

	memset(&e, 0, sizeof(e));
	memset(e.id, id, 16);
	e.id[15] = (uint8_t)(id >> 8);
	memset(e.to_dev, dev, 16);
	e.contact = contact;
	e.expires = exp;
	memset(buf[id], id, sizeof(buf[id]));
	e.env = buf[id];
	e.len = sizeof(buf[id]);
	return e;
}

static int collect(void *arg, const struct pn_mbs_entry *e)
{
	uint8_t *ids = arg;
	ids[ids[0] + 1] = e->id[0];
	ids[0]++;
	return 0;
}

static void store_quota_tombs_expiry(void **state)
{
	struct pn_mbstore *s;
	struct pn_mbs_stats st;
	struct pn_mbs_entry e;
	uint8_t got[300], dev[16], del[2][16], pk[32];
	char sender[16];
	unsigned id = 1;

	(void)state;
	assert_int_equal(pn_mbstore_new(&s), 0);
	/* a contact's two messages */
	e = ent((uint8_t)id++, 0xd1, true, T_EXP);
	assert_int_equal(pn_mbstore_put(s, "bob", &e, "alice", T_NOW), 0);
	assert_int_equal(pn_mbstore_put(s, "bob", &e, "alice", T_NOW), -EEXIST);
	e = ent((uint8_t)id++, 0xd1, true, T_EXP);
	assert_int_equal(pn_mbstore_put(s, "bob", &e, "alice", T_NOW), 0);
	/* a stranger floods: 8 from him, then refused; 64 from strangers in all, then
	 * refused; the contact's entries stay, and more of them still fit */
	for (int i = 0; i < 10; i++) {
		e = ent((uint8_t)id++, 0xd1, false, T_EXP);
		assert_int_equal(pn_mbstore_put(s, "bob", &e, "mallory", T_NOW),
				 i < PN_MBS_REQ_PER_SENDER ? 0 : -EDQUOT);
	}
	for (int k = 0; k < 10; k++) {
		snprintf(sender, sizeof(sender), "sybil%d", k);
		for (int i = 0; i < PN_MBS_REQ_PER_SENDER; i++) {
			e = ent((uint8_t)id++, 0xd1, false, T_EXP);
			int rc = pn_mbstore_put(s, "bob", &e, sender, T_NOW);
			assert_true(rc == 0 || rc == -EDQUOT);
		}
	}
	pn_mbstore_stats(s, &st);
	assert_true(st.entries == 2 + PN_MBS_REQ_MAX);
	e = ent(250, 0xd1, true, T_EXP);
	assert_int_equal(pn_mbstore_put(s, "bob", &e, "alice", T_NOW), 0);
	memset(got, 0, sizeof(got));
	memset(dev, 0xd1, 16);
	assert_int_equal(pn_mbstore_get(s, "bob", dev, T_NOW, 1000, collect, got), 3 + PN_MBS_REQ_MAX);
	assert_int_equal(got[1], 1); /* oldest first */
	assert_int_equal(got[2], 2);
	assert_int_equal(got[got[0]], 250);
	/* only the addressed device's entries are deleted; deleted ids cannot come back */
	memset(del[0], 1, 16);
	del[0][15] = 0;
	memset(del[1], 2, 16);
	del[1][15] = 0;
	memset(dev, 0xd2, 16);
	assert_int_equal(pn_mbstore_del(s, "bob", dev, (const uint8_t (*)[16])del, 2, T_EXP), 0);
	memset(dev, 0xd1, 16);
	assert_int_equal(pn_mbstore_del(s, "bob", dev, (const uint8_t (*)[16])del, 2, T_EXP), 2);
	e = ent(1, 0xd1, true, T_EXP);
	assert_int_equal(pn_mbstore_put(s, "bob", &e, "alice", T_NOW), -ESTALE);
	/* acknowledgement time stamps only grow per device */
	assert_int_equal(pn_mbstore_ack_ts(s, "bob", dev, 100), 0);
	assert_int_equal(pn_mbstore_ack_ts(s, "bob", dev, 100), -EALREADY);
	assert_int_equal(pn_mbstore_ack_ts(s, "bob", dev, 99), -EALREADY);
	assert_int_equal(pn_mbstore_ack_ts(s, "bob", dev, 101), 0);
	/* owner keys */
	memset(pk, 0x77, 32);
	pn_mbstore_owner_key(s, "bob", dev, pk, NULL, 0);
	memset(pk, 0, 32);
	assert_true(pn_mbstore_owner_find(s, "bob", dev, pk));
	assert_int_equal(pk[0], 0x77);
	assert_false(pn_mbstore_owner_find(s, "carol", dev, pk));
	/* expiry: everything goes, and nothing expired is stored */
	e = ent(251, 0xd1, true, T_NOW + 10);
	assert_int_equal(pn_mbstore_put(s, "bob", &e, "alice", T_NOW), 0);
	assert_int_equal(pn_mbstore_expire(s, T_NOW + 10), 1);
	assert_int_equal(pn_mbstore_count_for(s, "bob", dev, T_NOW), 1 + PN_MBS_REQ_MAX);
	assert_int_equal(pn_mbstore_expire(s, T_EXP), 1 + PN_MBS_REQ_MAX);
	pn_mbstore_stats(s, &st);
	assert_true(st.entries == 0 && st.bytes == 0);
	e = ent(252, 0xd1, true, T_NOW);
	assert_int_equal(pn_mbstore_put(s, "bob", &e, "alice", T_NOW), -ESTALE);
	pn_mbstore_free(s);
}

static int has_pass(void *arg, const struct pn_mbs_entry *e)
{
	unsigned *n = arg;
	*n += e->pass != NULL;
	return 0;
}

/* A persistent store keeps entries (with their passes), tombstones and owner keys across
 * a restart, and drops what expired while it was down. */
static void store_survives_restart(void **state)
{
	char dir[] = "/tmp/pn-mbs-XXXXXX", path[64], p2[80];
	struct pn_mbstore *s;
	struct pn_mbs_stats st;
	struct pn_mbs_entry e;
	uint8_t dev[16], pk[32], pass[PN_MBS_PASS_LEN], del[1][16], got[64];
	unsigned passes = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/mb.db", dir);
	memset(dev, 0xd1, 16);
	memset(pk, 0x77, 32);
	memset(pass, 0x55, sizeof(pass));
	assert_int_equal(pn_mbstore_new(&s), 0);
	assert_int_equal(pn_mbstore_open_db(s, path, T_NOW), 0);
	e = ent(1, 0xd1, true, T_EXP);
	e.pass = pass;
	assert_int_equal(pn_mbstore_put(s, "bob", &e, "alice", T_NOW), 0);
	e = ent(2, 0xd1, false, T_EXP);
	assert_int_equal(pn_mbstore_put(s, "bob", &e, "carol", T_NOW), 0);
	e = ent(3, 0xd1, true, T_NOW + 100);
	assert_int_equal(pn_mbstore_put(s, "bob", &e, "alice", T_NOW), 0);
	e = ent(4, 0xd1, true, T_EXP);
	assert_int_equal(pn_mbstore_put(s, "bob", &e, "alice", T_NOW), 0);
	memset(del[0], 4, 16);
	del[0][15] = 0;
	assert_int_equal(pn_mbstore_del(s, "bob", dev, (const uint8_t (*)[16])del, 1, T_EXP), 1);
	pn_mbstore_owner_key(s, "bob", dev, pk, (const uint8_t *)"cert", 4);
	pn_mbstore_free(s);

	/* restarted later: entry 3 expired meanwhile */
	assert_int_equal(pn_mbstore_new(&s), 0);
	assert_int_equal(pn_mbstore_open_db(s, path, T_NOW + 200), 0);
	pn_mbstore_stats(s, &st);
	assert_true(st.entries == 2);
	memset(got, 0, sizeof(got));
	assert_int_equal(pn_mbstore_get(s, "bob", dev, T_NOW + 200, 10, collect, got), 2);
	assert_int_equal(got[1], 1); /* arrival order kept */
	assert_int_equal(got[2], 2);
	pn_mbstore_get(s, "bob", dev, T_NOW + 200, 10, has_pass, &passes);
	assert_int_equal(passes, 1);
	e = ent(4, 0xd1, true, T_EXP); /* acknowledged before the restart */
	assert_int_equal(pn_mbstore_put(s, "bob", &e, "alice", T_NOW + 200), -ESTALE);
	memset(pk, 0, 32);
	assert_true(pn_mbstore_owner_find(s, "bob", dev, pk));
	assert_int_equal(pk[0], 0x77);
	/* changes after the restart are written through too */
	memset(del[0], 1, 16);
	del[0][15] = 0;
	assert_int_equal(pn_mbstore_del(s, "bob", dev, (const uint8_t (*)[16])del, 1, T_EXP), 1);
	pn_mbstore_free(s);
	assert_int_equal(pn_mbstore_new(&s), 0);
	assert_int_equal(pn_mbstore_open_db(s, path, T_NOW + 300), 0);
	pn_mbstore_stats(s, &st);
	assert_true(st.entries == 1);
	pn_mbstore_free(s);
	for (const char *suf = ""; suf; suf = !*suf ? "-wal" : strcmp(suf, "-wal") == 0 ? "-shm" : NULL) {
		snprintf(p2, sizeof(p2), "%s%s", path, suf);
		unlink(p2);
	}
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(envelope_roundtrip_and_forgeries),
		cmocka_unit_test(envelope_vector),
		cmocka_unit_test(receipt_sign_verify),
		cmocka_unit_test(ack_sign_verify),
		cmocka_unit_test(pass_sign_verify),
		cmocka_unit_test(store_quota_tombs_expiry),
		cmocka_unit_test(store_survives_restart),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
