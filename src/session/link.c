#include "session/link.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "base/buf.h"

static const char *pattern_name(uint8_t p)
{
	return p == PN_PATTERN_IK ? "IK" : p == PN_PATTERN_XX ? "XX" : NULL;
}

/* The prologue binds protocol version and purpose into the handshake hash. */
static size_t make_prologue(uint8_t out[16], uint8_t purpose)
{
	memcpy(out, "parley/1", 8);
	out[8] = purpose;
	return 9;
}

static size_t make_payload(uint8_t *out, size_t cap, const struct pn_link_params *p)
{
	struct pn_wr w;

	pn_wr_init(&w, out, cap);
	pn_wr_u64(&w, p->timestamp_ms);
	pn_wr_vec16(&w, p->cert, p->cert ? p->cert_len : 0);
	return w.err ? 0 : w.len;
}

static int take_payload(struct pn_link *l, const uint8_t *pl, size_t n)
{
	struct pn_rd r;
	const uint8_t *cert;
	size_t cl;

	pn_rd_init(&r, pl, n);
	pn_rd_u64(&r, &l->peer_ts);
	pn_rd_vec16(&r, &cert, &cl, PN_CERT_MAX);
	if (pn_rd_end(&r))
		return -EBADMSG;
	memcpy(l->peer_cert, cert, cl);
	l->peer_cert_len = cl;
	return 0;
}

static int split_keys(struct pn_link *l)
{
	struct pn_noise_cipher c1, c2;
	int rc;

	memcpy(l->remote_static, pn_noise_hs_remote_static(&l->hs), 32);
	rc = pn_noise_hs_split(&l->hs, &c1, &c2);
	if (rc)
		return rc;
	/* split() returns (initiator->responder, responder->initiator) as (c1, c2) from the
	 * initiator's view; pn_noise_hs_split already orients send/recv for our role. */
	memcpy(l->tx_key, c1.k, 32);
	memcpy(l->rx_key, c2.k, 32);
	sodium_memzero(&c1, sizeof(c1));
	sodium_memzero(&c2, sizeof(c2));
	pn_replay_init(&l->replay);
	l->tx_ctr = 0;
	l->state = PN_LINK_UP;
	return 0;
}

int pn_link_connect(struct pn_link *l, const struct pn_link_params *p)
{
	uint8_t prologue[16], payload[PN_HS_PKT_MAX];
	size_t plen, pl, n;
	struct pn_wr w;
	const char *pat = pattern_name(p->pattern);
	int rc;

	memset(l, 0, sizeof(*l));
	if (!pat || (p->pattern == PN_PATTERN_IK && !p->rs))
		return -EINVAL;
	pl = make_prologue(prologue, p->purpose);
	rc = pn_noise_hs_init(&l->hs, pat, true, prologue, pl, p->s_sk,
			      p->pattern == PN_PATTERN_IK ? p->rs : NULL, p->e_sk);
	if (rc)
		return rc;
	/* IK sends our static and certificate now; XX's first message is just e. */
	if (p->pattern == PN_PATTERN_IK) {
		plen = make_payload(payload, sizeof(payload), p);
	} else {
		plen = PN_XX1_MIN - 32; /* zero padding up to the size of the answer */
		memset(payload, 0, plen);
	}
	if (p->pattern == PN_PATTERN_XX)
		l->my_payload_len = make_payload(l->my_payload, sizeof(l->my_payload), p);
	pn_wr_init(&w, l->hs_pkt, sizeof(l->hs_pkt));
	pn_wr_u8(&w, PN_PKT_HS1);
	pn_wr_u8(&w, p->pattern);
	pn_wr_u8(&w, p->purpose);
	pn_wr_u32(&w, p->local_idx);
	if (w.err)
		return -ENOSPC;
	rc = pn_noise_hs_write(&l->hs, payload, plen, l->hs_pkt + w.len, sizeof(l->hs_pkt) - w.len,
			       &n);
	sodium_memzero(payload, sizeof(payload));
	if (rc)
		return rc;
	l->hs_pkt_len = w.len + n;
	l->initiator = true;
	l->pattern = p->pattern;
	l->purpose = p->purpose;
	l->local_idx = p->local_idx;
	l->state = PN_LINK_WAIT_HS2;
	l->hs_sent_at = p->now;
	l->hs_tries = 1;
	return 0;
}

int pn_link_accept(struct pn_link *l, const struct pn_link_params *p, const struct pn_pkt_hdr *h)
{
	uint8_t prologue[16], payload[PN_HS_PAYLOAD_MAX], in[PN_HS_PKT_MAX];
	size_t pl, plen, inlen, n;
	struct pn_wr w;
	const char *pat = pattern_name(h->pattern);
	int rc;

	memset(l, 0, sizeof(*l));
	if (!pat || h->type != PN_PKT_HS1)
		return -EINVAL;
	pl = make_prologue(prologue, h->purpose);
	rc = pn_noise_hs_init(&l->hs, pat, false, prologue, pl, p->s_sk, NULL, p->e_sk);
	if (rc)
		return rc;
	rc = pn_noise_hs_read(&l->hs, h->body, h->body_len, in, sizeof(in), &inlen);
	if (rc)
		goto fail;
	if (h->pattern == PN_PATTERN_IK) {
		rc = take_payload(l, in, inlen);
		if (rc)
			goto fail;
	} else {
		/* XX message 1 carries only padding (see PN_XX1_MIN): zeros */
		for (size_t i = 0; i < inlen; i++)
			if (in[i]) {
				rc = -EBADMSG;
				goto fail;
			}
	}
	plen = make_payload(payload, sizeof(payload), p);
	pn_wr_init(&w, l->hs_pkt, sizeof(l->hs_pkt));
	pn_wr_u8(&w, PN_PKT_HS2);
	pn_wr_u32(&w, p->local_idx);
	pn_wr_u32(&w, h->sender_idx);
	rc = pn_noise_hs_write(&l->hs, payload, plen, l->hs_pkt + w.len, sizeof(l->hs_pkt) - w.len,
			       &n);
	sodium_memzero(payload, sizeof(payload));
	if (rc)
		goto fail;
	l->hs_pkt_len = w.len + n;
	l->pattern = h->pattern;
	l->purpose = h->purpose;
	l->local_idx = p->local_idx;
	l->remote_idx = h->sender_idx;
	l->hs_sent_at = p->now;
	l->hs_tries = 1;
	l->last_rx = p->now;
	if (h->pattern == PN_PATTERN_IK) {
		rc = split_keys(l);
		if (rc)
			goto fail;
		l->up_at = p->now;
	} else {
		l->state = PN_LINK_WAIT_HS3;
	}
	return 0;
fail:
	pn_link_wipe(l);
	return rc == -EINVAL ? rc : -EBADMSG;
}

static int input_hs2(struct pn_link *l, const struct pn_pkt_hdr *h, uint64_t now)
{
	uint8_t in[PN_HS_PAYLOAD_MAX];
	size_t inlen, n;
	struct pn_noise_hs saved;
	struct pn_wr w;
	int rc;

	if (l->state != PN_LINK_WAIT_HS2 || h->receiver_idx != l->local_idx)
		return -EBADMSG;
	/* A forged HS2 must not destroy the pending handshake: read on a copy. */
	saved = l->hs;
	rc = pn_noise_hs_read(&l->hs, h->body, h->body_len, in, sizeof(in), &inlen);
	if (rc || take_payload(l, in, inlen)) {
		l->hs = saved;
		sodium_memzero(&saved, sizeof(saved));
		return -EBADMSG;
	}
	sodium_memzero(&saved, sizeof(saved));
	l->remote_idx = h->sender_idx;
	l->last_rx = now;
	l->up_at = now;
	if (l->pattern == PN_PATTERN_IK) {
		if (split_keys(l))
			return -EBADMSG;
		l->confirmed = true;
		return 0;
	}
	/* XX: -> s, se carrying our certificate; HS3 is resent until the peer's first DATA. */
	pn_wr_init(&w, l->hs_pkt, sizeof(l->hs_pkt));
	pn_wr_u8(&w, PN_PKT_HS3);
	pn_wr_u32(&w, l->remote_idx);
	rc = pn_noise_hs_write(&l->hs, l->my_payload, l->my_payload_len, l->hs_pkt + w.len,
			       sizeof(l->hs_pkt) - w.len, &n);
	sodium_memzero(l->my_payload, sizeof(l->my_payload));
	if (rc || w.err)
		return -EBADMSG;
	l->hs_pkt_len = w.len + n;
	l->hs_sent_at = now;
	l->hs_tries = 1;
	if (split_keys(l))
		return -EBADMSG;
	l->confirmed = false;
	return 0;
}

int pn_link_input(struct pn_link *l, const struct pn_pkt_hdr *h, uint64_t now, uint8_t *out,
		  size_t cap, size_t *out_len, enum pn_link_event *ev)
{
	uint8_t in[PN_HS_PAYLOAD_MAX];
	size_t inlen;
	int rc;

	*ev = PN_LINK_EV_NONE;
	*out_len = 0;
	switch (h->type) {
	case PN_PKT_HS2:
		rc = input_hs2(l, h, now);
		if (rc)
			goto bad;
		*ev = PN_LINK_EV_UP;
		return 0;
	case PN_PKT_HS3:
		if (l->state != PN_LINK_WAIT_HS3 || h->receiver_idx != l->local_idx)
			goto bad;
		rc = pn_noise_hs_read(&l->hs, h->body, h->body_len, in, sizeof(in), &inlen);
		if (rc || take_payload(l, in, inlen)) {
			l->state = PN_LINK_DEAD;
			goto bad;
		}
		if (split_keys(l))
			goto bad;
		l->confirmed = true;
		l->up_at = now;
		l->last_rx = now;
		*ev = PN_LINK_EV_UP;
		return 0;
	case PN_PKT_DATA:
		if (l->state != PN_LINK_UP || h->receiver_idx != l->local_idx)
			goto bad;
		if (!pn_replay_check(&l->replay, h->counter)) {
			l->rx_replay++;
			return -EBADMSG;
		}
		if (h->body_len - PN_TAG > cap)
			goto bad;
		/* AD = the 13-byte header that precedes the body. */
		rc = pn_aead_open(l->rx_key, h->counter, h->body - PN_DATA_HDR, PN_DATA_HDR, h->body,
				  h->body_len, out);
		if (rc)
			goto bad;
		if (!pn_replay_commit(&l->replay, h->counter)) {
			l->rx_replay++;
			return -EBADMSG;
		}
		*out_len = h->body_len - PN_TAG;
		l->confirmed = true;
		l->last_rx = now;
		*ev = PN_LINK_EV_DATA;
		return 0;
	default:
		goto bad;
	}
bad:
	l->rx_bad++;
	return -EBADMSG;
}

int pn_link_seal(struct pn_link *l, const uint8_t *frame, size_t len, uint64_t now, uint8_t *out,
		 size_t cap, size_t *out_len)
{
	struct pn_wr w;
	int rc;

	if (l->state != PN_LINK_UP)
		return -EPROTO;
	if (len > PN_FRAME_MAX || cap < PN_DATA_HDR + len + PN_TAG)
		return -ENOSPC;
	pn_wr_init(&w, out, cap);
	pn_wr_u8(&w, PN_PKT_DATA);
	pn_wr_u32(&w, l->remote_idx);
	pn_wr_u64(&w, l->tx_ctr);
	rc = pn_aead_seal(l->tx_key, l->tx_ctr, out, PN_DATA_HDR, frame, len, out + PN_DATA_HDR);
	if (rc)
		return rc;
	l->tx_ctr++;
	l->last_tx = now;
	*out_len = PN_DATA_HDR + len + PN_TAG;
	return 0;
}

void pn_link_wipe(struct pn_link *l)
{
	sodium_memzero(l, sizeof(*l));
}
