/* The Noise Protocol Framework (revision 34), suite 25519_ChaChaPoly_BLAKE2b, over
 * libsodium. Handshake patterns: NN, NK, NX, XN, XK, XX, KN, KK, KX, IN, IK, IX (the
 * one-way N, K, X too). parley uses IK (responder key known) and XX (unknown); the rest
 * exist so the published test vectors exercise the whole engine.
 *
 * The caller supplies every ephemeral private key (from its environment's random source),
 * so the simulator and the vector tests are deterministic. Secrets are wiped by
 * pn_noise_hs_wipe() and on every error path. */
#ifndef PARLEY_CRYPTO_NOISE_H
#define PARLEY_CRYPTO_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pn_noise_limits {
	PN_NOISE_DHLEN = 32,
	PN_NOISE_HASHLEN = 64,
	PN_NOISE_KEYLEN = 32,
	PN_NOISE_TAGLEN = 16,
	PN_NOISE_MAX_MSG = 65535,
};

struct pn_noise_cipher {
	uint8_t k[PN_NOISE_KEYLEN];
	uint64_t n;
	bool has_key;
};

/* Opaque in spirit, but sized here so callers can embed it without allocation. */
struct pn_noise_hs {
	int pattern;		/* index into the pattern table */
	bool initiator;
	int msg_index;		/* next message number in the pattern */
	struct pn_noise_cipher cs;
	uint8_t ck[PN_NOISE_HASHLEN];
	uint8_t h[PN_NOISE_HASHLEN];
	uint8_t s_priv[32], s_pub[32];
	uint8_t e_priv[32], e_pub[32];
	uint8_t rs[32], re[32];
	bool has_s, has_e, has_rs, has_re;
	bool failed;
	bool split;		/* transport keys handed out; secrets already wiped */
};

/* Starts a handshake. pattern is the name ("IK", "XX", ...). prologue may be NULL/0.
 * s_priv: our static X25519 private key, required when the pattern sends or pre-shares
 * our static (NULL otherwise). rs: the responder's static key for IK/NK/KK..., else NULL.
 * (A K* responder may pass the initiator's static here instead of calling
 * pn_noise_hs_set_remote_initiator_static; rs in any other role is -EINVAL.)
 * e_priv: our ephemeral private key (32 random bytes) — required, except for the responder
 * of a one-way pattern (N, K, X), which never sends e and may pass NULL.
 * Keys this role does not use are ignored. Nothing is allocated.
 * Returns 0, -EINVAL (unknown pattern or a missing key). */
int pn_noise_hs_init(struct pn_noise_hs *hs, const char *pattern, bool initiator,
		     const uint8_t *prologue, size_t prologue_len, const uint8_t *s_priv,
		     const uint8_t *rs, const uint8_t e_priv[32]);

/* Pre-message for patterns where the initiator's static is known to the responder in
 * advance (K*): the responder passes the initiator's public static here before reading.
 * Returns 0 or -EINVAL. Must be called right after init if needed. */
int pn_noise_hs_set_remote_initiator_static(struct pn_noise_hs *hs, const uint8_t rs[32]);

/* Writes the next handshake message carrying payload. out must hold the message
 * (payload_len + up to 2*32 + 2*16 bytes) and must not overlap payload. Returns 0,
 * -EPROTO (not our turn / done), -ENOSPC (state untouched), -EINVAL (message would exceed
 * 65535 bytes), -EBADMSG (a DH with a remote key gave the low-order all-zero result; the
 * handshake is then failed and wiped). */
int pn_noise_hs_write(struct pn_noise_hs *hs, const uint8_t *payload, size_t payload_len,
		      uint8_t *out, size_t cap, size_t *out_len);
/* Reads the next handshake message, decrypting its payload into payload[cap].
 * Returns 0, -EPROTO (not our turn / done), -EBADMSG (malformed, failed MAC or bad DH),
 * -ENOSPC (payload does not fit in cap). A failed read (other than -EPROTO/-EINVAL) wipes
 * the handshake and leaves it unusable (failed = true). */
int pn_noise_hs_read(struct pn_noise_hs *hs, const uint8_t *msg, size_t len,
		     uint8_t *payload, size_t cap, size_t *payload_len);

bool pn_noise_hs_is_done(const struct pn_noise_hs *hs);
/* True when the next handshake message is ours to write. */
bool pn_noise_hs_my_turn(const struct pn_noise_hs *hs);
/* The remote static public key, once learned (NULL before). */
const uint8_t *pn_noise_hs_remote_static(const struct pn_noise_hs *hs);
/* Handshake hash h (64 bytes) — for channel binding. */
const uint8_t *pn_noise_hs_hash(const struct pn_noise_hs *hs);

/* After the last message: derive the two transport ciphers (initiator's send = c1).
 * Wipes the secret handshake state (ck, keys, our private keys); the handshake hash and
 * the remote static stay readable until pn_noise_hs_wipe(). Returns 0 or -EPROTO if not
 * done or already split. */
int pn_noise_hs_split(struct pn_noise_hs *hs, struct pn_noise_cipher *send,
		      struct pn_noise_cipher *recv);
void pn_noise_hs_wipe(struct pn_noise_hs *hs);

/* Noise CipherState Encrypt/DecryptWithAd with the implicit counter n (used by the vector
 * tests and handshake). out needs len + 16. Returns 0, -EBADMSG (decrypt failure), -EOVERFLOW. */
int pn_noise_cipher_encrypt(struct pn_noise_cipher *c, const uint8_t *ad, size_t ad_len,
			    const uint8_t *pt, size_t len, uint8_t *out);
int pn_noise_cipher_decrypt(struct pn_noise_cipher *c, const uint8_t *ad, size_t ad_len,
			    const uint8_t *ct, size_t len, uint8_t *out);

/* Transport AEAD with an explicit 64-bit counter (out-of-order UDP): ChaCha20-Poly1305
 * IETF, nonce = 4 zero bytes || counter little-endian, as Noise's ChaChaPoly. */
int pn_aead_seal(const uint8_t key[32], uint64_t counter, const uint8_t *ad, size_t ad_len,
		 const uint8_t *pt, size_t len, uint8_t *out);
int pn_aead_open(const uint8_t key[32], uint64_t counter, const uint8_t *ad, size_t ad_len,
		 const uint8_t *ct, size_t len, uint8_t *out);

#endif
