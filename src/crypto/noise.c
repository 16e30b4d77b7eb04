/* Noise Protocol Framework, revision 34, suite 25519_ChaChaPoly_BLAKE2b.
 *
 * The handshake is driven by a table: each pattern is its pre-messages plus up to three
 * message lines of tokens, and one engine (hs_write / hs_read) interprets the tokens. The
 * section numbers in comments refer to the Noise specification, revision 34. */
#include "crypto/noise.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

enum noise_token {
	TOK_END = 0, /* terminates a message line */
	TOK_E,
	TOK_S,
	TOK_EE,
	TOK_ES,
	TOK_SE,
	TOK_SS,
};

enum noise_table_limits {
	MAX_MSGS = 3,
	MAX_TOKENS = 5,
	BLAKE2B_BLOCKLEN = 128,
	NAME_MAX_LEN = 48,
};

struct noise_pattern {
	const char *name;
	bool pre_init_s; /* "-> s" pre-message: the responder knows the initiator's static */
	bool pre_resp_s; /* "<- s" pre-message: the initiator knows the responder's static */
	int n_msgs;	 /* messages alternate, initiator first */
	uint8_t msgs[MAX_MSGS][MAX_TOKENS + 1];
};

/* Section 7.4 (one-way) and 7.5 (interactive). */
static const struct noise_pattern patterns[] = {
	{"N", false, true, 1, {{TOK_E, TOK_ES}}},
	{"K", true, true, 1, {{TOK_E, TOK_ES, TOK_SS}}},
	{"X", false, true, 1, {{TOK_E, TOK_ES, TOK_S, TOK_SS}}},
	{"NN", false, false, 2, {{TOK_E}, {TOK_E, TOK_EE}}},
	{"NK", false, true, 2, {{TOK_E, TOK_ES}, {TOK_E, TOK_EE}}},
	{"NX", false, false, 2, {{TOK_E}, {TOK_E, TOK_EE, TOK_S, TOK_ES}}},
	{"XN", false, false, 3, {{TOK_E}, {TOK_E, TOK_EE}, {TOK_S, TOK_SE}}},
	{"XK", false, true, 3, {{TOK_E, TOK_ES}, {TOK_E, TOK_EE}, {TOK_S, TOK_SE}}},
	{"XX", false, false, 3, {{TOK_E}, {TOK_E, TOK_EE, TOK_S, TOK_ES}, {TOK_S, TOK_SE}}},
	{"KN", true, false, 2, {{TOK_E}, {TOK_E, TOK_EE, TOK_SE}}},
	{"KK", true, true, 2, {{TOK_E, TOK_ES, TOK_SS}, {TOK_E, TOK_EE, TOK_SE}}},
	{"KX", true, false, 2, {{TOK_E}, {TOK_E, TOK_EE, TOK_SE, TOK_S, TOK_ES}}},
	{"IN", false, false, 2, {{TOK_E, TOK_S}, {TOK_E, TOK_EE, TOK_SE}}},
	{"IK", false, true, 2, {{TOK_E, TOK_ES, TOK_S, TOK_SS}, {TOK_E, TOK_EE, TOK_SE}}},
	{"IX", false, false, 2, {{TOK_E, TOK_S}, {TOK_E, TOK_EE, TOK_SE, TOK_S, TOK_ES}}},
};

static const struct noise_pattern *hs_pattern(const struct pn_noise_hs *hs)
{
	return &patterns[hs->pattern];
}

static bool pattern_sends(const struct noise_pattern *p, bool initiator, int tok)
{
	for (int m = initiator ? 0 : 1; m < p->n_msgs; m += 2)
		for (int t = 0; p->msgs[m][t] != TOK_END; t++)
			if (p->msgs[m][t] == tok)
				return true;
	return false;
}

/* Section 4.2: the nonce is 32 bits of zeros followed by the little-endian 64-bit counter. */
static void chachapoly_nonce(uint8_t nonce[12], uint64_t n)
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(n >> (8 * i));
}

int pn_aead_seal(const uint8_t key[32], uint64_t counter, const uint8_t *ad, size_t ad_len,
		 const uint8_t *pt, size_t len, uint8_t *out)
{
	uint8_t nonce[12];

	/* 2^64-1 is reserved by Noise (section 5.1); refusing it keeps the two APIs aligned. */
	if (counter == UINT64_MAX)
		return -EOVERFLOW;
	chachapoly_nonce(nonce, counter);
	crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, pt, len, ad, ad_len, NULL, nonce,
						  key);
	return 0;
}

int pn_aead_open(const uint8_t key[32], uint64_t counter, const uint8_t *ad, size_t ad_len,
		 const uint8_t *ct, size_t len, uint8_t *out)
{
	uint8_t nonce[12];

	if (counter == UINT64_MAX)
		return -EOVERFLOW;
	if (len < PN_NOISE_TAGLEN)
		return -EBADMSG;
	chachapoly_nonce(nonce, counter);
	/* libsodium verifies the tag before it writes any plaintext. */
	if (crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, ct, len, ad, ad_len, nonce,
						      key))
		return -EBADMSG;
	return 0;
}

int pn_noise_cipher_encrypt(struct pn_noise_cipher *c, const uint8_t *ad, size_t ad_len,
			    const uint8_t *pt, size_t len, uint8_t *out)
{
	int err;

	if (!c->has_key)
		return -EINVAL;
	err = pn_aead_seal(c->k, c->n, ad, ad_len, pt, len, out);
	if (err == 0)
		c->n++;
	return err;
}

int pn_noise_cipher_decrypt(struct pn_noise_cipher *c, const uint8_t *ad, size_t ad_len,
			    const uint8_t *ct, size_t len, uint8_t *out)
{
	int err;

	if (!c->has_key)
		return -EINVAL;
	/* Section 5.1: n is only incremented on success, so a forged packet costs nothing. */
	err = pn_aead_open(c->k, c->n, ad, ad_len, ct, len, out);
	if (err == 0)
		c->n++;
	return err;
}

/* Section 4.3: HMAC (RFC 2104) over BLAKE2b with its 128-byte block. libsodium's keyed
 * BLAKE2b is not HMAC, so HKDF must build HMAC by hand to match other implementations. */
static void hmac_blake2b(uint8_t out[PN_NOISE_HASHLEN], const uint8_t *key, size_t key_len,
			 const uint8_t *d1, size_t d1_len, const uint8_t *d2, size_t d2_len)
{
	uint8_t k[BLAKE2B_BLOCKLEN] = {0};
	uint8_t pad[BLAKE2B_BLOCKLEN];
	uint8_t inner[PN_NOISE_HASHLEN];
	crypto_generichash_blake2b_state st;

	if (key_len > BLAKE2B_BLOCKLEN)
		crypto_generichash_blake2b(k, PN_NOISE_HASHLEN, key, key_len, NULL, 0);
	else if (key_len)
		memcpy(k, key, key_len);

	for (int i = 0; i < BLAKE2B_BLOCKLEN; i++)
		pad[i] = k[i] ^ 0x36;
	crypto_generichash_blake2b_init(&st, NULL, 0, PN_NOISE_HASHLEN);
	crypto_generichash_blake2b_update(&st, pad, sizeof(pad));
	if (d1_len)
		crypto_generichash_blake2b_update(&st, d1, d1_len);
	if (d2_len)
		crypto_generichash_blake2b_update(&st, d2, d2_len);
	crypto_generichash_blake2b_final(&st, inner, sizeof(inner));

	for (int i = 0; i < BLAKE2B_BLOCKLEN; i++)
		pad[i] = k[i] ^ 0x5c;
	crypto_generichash_blake2b_init(&st, NULL, 0, PN_NOISE_HASHLEN);
	crypto_generichash_blake2b_update(&st, pad, sizeof(pad));
	crypto_generichash_blake2b_update(&st, inner, sizeof(inner));
	crypto_generichash_blake2b_final(&st, out, PN_NOISE_HASHLEN);

	sodium_memzero(k, sizeof(k));
	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
	sodium_memzero(&st, sizeof(st));
}

/* Section 4.3 HKDF with two outputs (the three-output form is only needed for PSKs). */
static void hkdf2(const uint8_t ck[PN_NOISE_HASHLEN], const uint8_t *ikm, size_t ikm_len,
		  uint8_t out1[PN_NOISE_HASHLEN], uint8_t out2[PN_NOISE_HASHLEN])
{
	static const uint8_t one = 0x01, two = 0x02;
	uint8_t temp_key[PN_NOISE_HASHLEN];

	hmac_blake2b(temp_key, ck, PN_NOISE_HASHLEN, ikm, ikm_len, NULL, 0);
	hmac_blake2b(out1, temp_key, sizeof(temp_key), &one, 1, NULL, 0);
	hmac_blake2b(out2, temp_key, sizeof(temp_key), out1, PN_NOISE_HASHLEN, &two, 1);
	sodium_memzero(temp_key, sizeof(temp_key));
}

static void mix_hash(struct pn_noise_hs *hs, const uint8_t *data, size_t len)
{
	crypto_generichash_blake2b_state st;

	crypto_generichash_blake2b_init(&st, NULL, 0, PN_NOISE_HASHLEN);
	crypto_generichash_blake2b_update(&st, hs->h, PN_NOISE_HASHLEN);
	if (len)
		crypto_generichash_blake2b_update(&st, data, len);
	crypto_generichash_blake2b_final(&st, hs->h, PN_NOISE_HASHLEN);
}

static void mix_key(struct pn_noise_hs *hs, const uint8_t *ikm, size_t len)
{
	uint8_t temp_k[PN_NOISE_HASHLEN];

	hkdf2(hs->ck, ikm, len, hs->ck, temp_k);
	/* HASHLEN is 64, so the cipher key is the first 32 bytes (section 5.2). */
	memcpy(hs->cs.k, temp_k, PN_NOISE_KEYLEN);
	hs->cs.n = 0;
	hs->cs.has_key = true;
	sodium_memzero(temp_k, sizeof(temp_k));
}

/* EncryptAndHash: out gets len (+16 once a key exists) bytes. */
static int encrypt_and_hash(struct pn_noise_hs *hs, const uint8_t *pt, size_t len, uint8_t *out,
			    size_t *out_len)
{
	int err;

	if (hs->cs.has_key) {
		err = pn_noise_cipher_encrypt(&hs->cs, hs->h, PN_NOISE_HASHLEN, pt, len, out);
		if (err)
			return err;
		len += PN_NOISE_TAGLEN;
	} else if (len) {
		memmove(out, pt, len);
	}
	mix_hash(hs, out, len);
	*out_len = len;
	return 0;
}

/* DecryptAndHash: h must absorb the ciphertext, so it is hashed before it is overwritten
 * (callers may decrypt in place). */
static int decrypt_and_hash(struct pn_noise_hs *hs, const uint8_t *ct, size_t len, uint8_t *out)
{
	uint8_t h_old[PN_NOISE_HASHLEN];
	int err = 0;

	memcpy(h_old, hs->h, sizeof(h_old));
	mix_hash(hs, ct, len);
	if (hs->cs.has_key)
		err = pn_noise_cipher_decrypt(&hs->cs, h_old, sizeof(h_old), ct, len, out);
	else if (len)
		memmove(out, ct, len);
	return err;
}

/* DH with the low-order check: libsodium returns -1 when the shared secret is all zeros,
 * i.e. the peer sent a point of small order, which would make the key contribution void. */
static int dh_mix(struct pn_noise_hs *hs, const uint8_t priv[32], const uint8_t pub[32])
{
	uint8_t shared[PN_NOISE_DHLEN];
	int err = 0;

	if (crypto_scalarmult(shared, priv, pub) != 0) {
		err = -EBADMSG;
		goto out;
	}
	mix_key(hs, shared, sizeof(shared));
out:
	sodium_memzero(shared, sizeof(shared));
	return err;
}

/* The four DH tokens, from this side's point of view (section 5.3). */
static int dh_token(struct pn_noise_hs *hs, int tok)
{
	switch (tok) {
	case TOK_EE:
		return dh_mix(hs, hs->e_priv, hs->re);
	case TOK_ES:
		return hs->initiator ? dh_mix(hs, hs->e_priv, hs->rs) : dh_mix(hs, hs->s_priv, hs->re);
	case TOK_SE:
		return hs->initiator ? dh_mix(hs, hs->s_priv, hs->re) : dh_mix(hs, hs->e_priv, hs->rs);
	case TOK_SS:
		return dh_mix(hs, hs->s_priv, hs->rs);
	default:
		return -EINVAL;
	}
}

static void hs_fail(struct pn_noise_hs *hs)
{
	pn_noise_hs_wipe(hs);
	hs->failed = true;
}

/* Mixes the pre-message public keys into h: the initiator's first (section 7.1). */
static void mix_premessages(struct pn_noise_hs *hs)
{
	const struct noise_pattern *p = hs_pattern(hs);

	if (p->pre_init_s)
		mix_hash(hs, hs->initiator ? hs->s_pub : hs->rs, 32);
	if (p->pre_resp_s)
		mix_hash(hs, hs->initiator ? hs->rs : hs->s_pub, 32);
}

/* True while the responder of a K* pattern still waits for the initiator's static key;
 * its pre-messages are mixed in only once that key arrives, to keep their order. */
static bool premessage_pending(const struct pn_noise_hs *hs)
{
	return !hs->initiator && hs_pattern(hs)->pre_init_s && !hs->has_rs;
}

int pn_noise_hs_init(struct pn_noise_hs *hs, const char *pattern, bool initiator,
		     const uint8_t *prologue, size_t prologue_len, const uint8_t *s_priv,
		     const uint8_t *rs, const uint8_t e_priv[32])
{
	char name[NAME_MAX_LEN];
	const struct noise_pattern *p = NULL;
	size_t name_len;
	int idx = -1;
	bool need_s, need_e, need_rs, takes_rs;

	if (!hs || !pattern || (prologue_len && !prologue))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		if (strcmp(pattern, patterns[i].name) == 0) {
			idx = (int)i;
			p = &patterns[i];
			break;
		}
	}
	if (!p)
		return -EINVAL;

	need_s = pattern_sends(p, initiator, TOK_S) || (initiator ? p->pre_init_s : p->pre_resp_s);
	/* Every DH token involves our ephemeral or our static; the responder of a one-way
	 * pattern is the only role that never generates an ephemeral. */
	need_e = pattern_sends(p, initiator, TOK_E);
	need_rs = initiator && p->pre_resp_s;
	takes_rs = need_rs || (!initiator && p->pre_init_s);
	if ((need_s && !s_priv) || (need_e && !e_priv) || (need_rs && !rs) || (rs && !takes_rs))
		return -EINVAL;

	memset(hs, 0, sizeof(*hs));
	hs->pattern = idx;
	hs->initiator = initiator;
	if (need_s) {
		memcpy(hs->s_priv, s_priv, 32);
		crypto_scalarmult_base(hs->s_pub, hs->s_priv);
		hs->has_s = true;
	}
	if (need_e) {
		memcpy(hs->e_priv, e_priv, 32);
		crypto_scalarmult_base(hs->e_pub, hs->e_priv);
		hs->has_e = true;
	}

	/* Section 5.2 InitializeSymmetric: a name of at most HASHLEN bytes is used as h
	 * directly, zero-padded; ours are all short enough. */
	name_len = (size_t)snprintf(name, sizeof(name), "Noise_%s_25519_ChaChaPoly_BLAKE2b", p->name);
	memcpy(hs->h, name, name_len);
	memcpy(hs->ck, hs->h, PN_NOISE_HASHLEN);
	mix_hash(hs, prologue, prologue_len);

	if (rs) {
		memcpy(hs->rs, rs, 32);
		hs->has_rs = true;
	}
	if (!premessage_pending(hs))
		mix_premessages(hs);
	return 0;
}

int pn_noise_hs_set_remote_initiator_static(struct pn_noise_hs *hs, const uint8_t rs[32])
{
	if (!hs || !rs || hs->failed || hs->split || hs->msg_index != 0 ||
	    !premessage_pending(hs))
		return -EINVAL;
	memcpy(hs->rs, rs, 32);
	hs->has_rs = true;
	mix_premessages(hs);
	return 0;
}

bool pn_noise_hs_is_done(const struct pn_noise_hs *hs)
{
	return !hs->failed && hs->msg_index == hs_pattern(hs)->n_msgs;
}

bool pn_noise_hs_my_turn(const struct pn_noise_hs *hs)
{
	if (hs->failed || hs->split || pn_noise_hs_is_done(hs) || premessage_pending(hs))
		return false;
	return ((hs->msg_index % 2) == 0) == hs->initiator;
}

const uint8_t *pn_noise_hs_remote_static(const struct pn_noise_hs *hs)
{
	return hs->has_rs ? hs->rs : NULL;
}

const uint8_t *pn_noise_hs_hash(const struct pn_noise_hs *hs)
{
	return hs->h;
}

/* Length of the next message's fixed part (keys, tags on keys), and whether the payload
 * will be encrypted. Computed before touching state so size errors leave it intact. */
static size_t msg_overhead(const struct pn_noise_hs *hs, bool *payload_keyed)
{
	const uint8_t *toks = hs_pattern(hs)->msgs[hs->msg_index];
	bool keyed = hs->cs.has_key;
	size_t n = 0;

	for (int t = 0; toks[t] != TOK_END; t++) {
		if (toks[t] == TOK_E)
			n += PN_NOISE_DHLEN;
		else if (toks[t] == TOK_S)
			n += PN_NOISE_DHLEN + (keyed ? PN_NOISE_TAGLEN : 0);
		else
			keyed = true;
	}
	*payload_keyed = keyed;
	return n;
}

int pn_noise_hs_write(struct pn_noise_hs *hs, const uint8_t *payload, size_t payload_len,
		      uint8_t *out, size_t cap, size_t *out_len)
{
	const uint8_t *toks;
	size_t fixed, total, pos = 0, n;
	bool keyed;
	int err;

	if (!hs || !out || !out_len || (payload_len && !payload))
		return -EINVAL;
	if (!pn_noise_hs_my_turn(hs))
		return -EPROTO;
	fixed = msg_overhead(hs, &keyed);
	if (payload_len > PN_NOISE_MAX_MSG)
		return -EINVAL;
	total = fixed + payload_len + (keyed ? PN_NOISE_TAGLEN : 0);
	if (total > PN_NOISE_MAX_MSG)
		return -EINVAL;
	if (total > cap)
		return -ENOSPC;

	toks = hs_pattern(hs)->msgs[hs->msg_index];
	for (int t = 0; toks[t] != TOK_END; t++) {
		switch (toks[t]) {
		case TOK_E: /* e */
			memcpy(out + pos, hs->e_pub, PN_NOISE_DHLEN);
			mix_hash(hs, hs->e_pub, PN_NOISE_DHLEN);
			pos += PN_NOISE_DHLEN;
			break;
		case TOK_S: /* s */
			err = encrypt_and_hash(hs, hs->s_pub, PN_NOISE_DHLEN, out + pos, &n);
			if (err)
				goto out;
			pos += n;
			break;
		default: /* ee, es, se, ss */
			err = dh_token(hs, toks[t]);
			if (err)
				goto out;
			break;
		}
	}
	err = encrypt_and_hash(hs, payload, payload_len, out + pos, &n);
	if (err)
		goto out;
	pos += n;
	hs->msg_index++;
	*out_len = pos;
out:
	if (err)
		hs_fail(hs);
	return err;
}

int pn_noise_hs_read(struct pn_noise_hs *hs, const uint8_t *msg, size_t len, uint8_t *payload,
		     size_t cap, size_t *payload_len)
{
	const uint8_t *toks;
	size_t fixed, body, pos = 0, n;
	bool keyed;
	int err;

	if (!hs || !payload_len || (len && !msg) || (cap && !payload))
		return -EINVAL;
	/* Not our turn to read when it is our turn to write, or when done/failed. */
	if (hs->failed || hs->split || pn_noise_hs_is_done(hs) || premessage_pending(hs) ||
	    pn_noise_hs_my_turn(hs))
		return -EPROTO;

	fixed = msg_overhead(hs, &keyed);
	if (len > PN_NOISE_MAX_MSG || len < fixed + (keyed ? PN_NOISE_TAGLEN : 0)) {
		err = -EBADMSG;
		goto out;
	}
	body = len - fixed - (keyed ? PN_NOISE_TAGLEN : 0);
	if (body > cap) {
		err = -ENOSPC;
		goto out;
	}

	toks = hs_pattern(hs)->msgs[hs->msg_index];
	for (int t = 0; toks[t] != TOK_END; t++) {
		switch (toks[t]) {
		case TOK_E: /* re */
			memcpy(hs->re, msg + pos, PN_NOISE_DHLEN);
			hs->has_re = true;
			mix_hash(hs, hs->re, PN_NOISE_DHLEN);
			pos += PN_NOISE_DHLEN;
			break;
		case TOK_S: /* rs */
			n = PN_NOISE_DHLEN + (hs->cs.has_key ? PN_NOISE_TAGLEN : 0);
			err = decrypt_and_hash(hs, msg + pos, n, hs->rs);
			if (err)
				goto out;
			hs->has_rs = true;
			pos += n;
			break;
		default: /* ee, es, se, ss */
			err = dh_token(hs, toks[t]);
			if (err)
				goto out;
			break;
		}
	}
	err = decrypt_and_hash(hs, msg + pos, len - pos, payload);
	if (err)
		goto out;
	hs->msg_index++;
	*payload_len = body;
out:
	/* Any failure after the turn check poisons the handshake: h and ck may already have
	 * absorbed attacker bytes, and retrying would let an attacker probe the state. */
	if (err)
		hs_fail(hs);
	return err;
}

int pn_noise_hs_split(struct pn_noise_hs *hs, struct pn_noise_cipher *send,
		      struct pn_noise_cipher *recv)
{
	uint8_t k1[PN_NOISE_HASHLEN], k2[PN_NOISE_HASHLEN];
	struct pn_noise_cipher *c1, *c2;

	if (!hs || !send || !recv)
		return -EINVAL;
	if (hs->split || !pn_noise_hs_is_done(hs))
		return -EPROTO;

	/* Section 5.2 Split: c1 carries initiator -> responder traffic. */
	hkdf2(hs->ck, NULL, 0, k1, k2);
	c1 = hs->initiator ? send : recv;
	c2 = hs->initiator ? recv : send;
	memcpy(c1->k, k1, PN_NOISE_KEYLEN);
	c1->n = 0;
	c1->has_key = true;
	memcpy(c2->k, k2, PN_NOISE_KEYLEN);
	c2->n = 0;
	c2->has_key = true;

	/* Wipe every secret; h and the remote keys are public and stay readable for channel
	 * binding and identity checks until pn_noise_hs_wipe(). */
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	sodium_memzero(hs->ck, sizeof(hs->ck));
	sodium_memzero(&hs->cs, sizeof(hs->cs));
	sodium_memzero(hs->s_priv, sizeof(hs->s_priv));
	sodium_memzero(hs->e_priv, sizeof(hs->e_priv));
	hs->split = true;
	return 0;
}

void pn_noise_hs_wipe(struct pn_noise_hs *hs)
{
	if (hs)
		sodium_memzero(hs, sizeof(*hs));
}
