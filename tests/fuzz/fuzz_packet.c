/* libFuzzer target: one received datagram, the path every packet from the network takes.
 *
 * The input goes through pn_pkt_parse(); by type it then reaches
 *   HS1  -> pn_link_accept() of a responder with a fixed static key (IK or XX),
 *   HS2  -> an IK and an XX initiator waiting for HS2,
 *   HS3  -> an XX responder waiting for HS3,
 *   DATA -> both ends of an established IK link,
 *   RESET -> every link above (the link layer must refuse it: RESET is the owner's).
 * The links are built once by a genuine handshake (fixed keys and indices, so the seed
 * files in seeds/packet/ can address them); each input works on copies, so runs do not
 * depend on each other.
 *
 * Invariants checked besides "no crash": a parsed body lies inside the input and is at
 * least as long as its type's minimum; a refused HS2 leaves the initiator's pending
 * handshake intact (forged HS2s must not kill it); decrypted output is never longer than
 * its ciphertext. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/keys.h"
#include "session/link.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The seed files in seeds/packet/ were made with these keys and indices: change together. */
enum {
	INI_IDX = 0x494e4931,  /* "INI1": every initiator */
	RESP_IDX = 0x52455350, /* "RESP": every responder */
	TS = 1000,
};

static struct pn_keys ini_keys, resp_keys;
static const uint8_t e_i[32] = {0x33}, e_r[32] = {0x44};

/* Pristine links, copied per input. */
static struct pn_link wait_ik, wait_xx; /* initiators after HS1 */
static struct pn_link wait_hs3;          /* XX responder after HS2 */
static struct pn_link up_ini, up_resp;   /* an established IK link */
static struct pn_link work;

static void params(struct pn_link_params *p, bool initiator, uint8_t pattern)
{
	memset(p, 0, sizeof(*p));
	p->pattern = pattern;
	p->purpose = PN_PURPOSE_ATTACH;
	p->s_sk = initiator ? ini_keys.dh_sk : resp_keys.dh_sk;
	p->rs = initiator && pattern == PN_PATTERN_IK ? resp_keys.dh_pk : NULL;
	p->e_sk = initiator ? e_i : e_r;
	p->local_idx = initiator ? INI_IDX : RESP_IDX;
	p->timestamp_ms = TS;
	p->now = TS;
}

static void must_parse(struct pn_pkt_hdr *h, const uint8_t *buf, size_t len)
{
	if (pn_pkt_parse(h, buf, len))
		abort();
}

static void init_once(void)
{
	static int ready;
	uint8_t seed[PN_SEED], out[PN_PKT_RX_MAX];
	struct pn_link_params p;
	struct pn_pkt_hdr h;
	enum pn_link_event ev;
	size_t n;

	if (ready)
		return;
	if (sodium_init() < 0)
		abort();
	memset(seed, 0x11, sizeof(seed));
	if (pn_keys_from_seed(&ini_keys, seed))
		abort();
	memset(seed, 0x22, sizeof(seed));
	if (pn_keys_from_seed(&resp_keys, seed))
		abort();

	/* IK: initiator waiting, then the whole handshake. */
	params(&p, true, PN_PATTERN_IK);
	if (pn_link_connect(&wait_ik, &p))
		abort();
	up_ini = wait_ik;
	must_parse(&h, up_ini.hs_pkt, up_ini.hs_pkt_len);
	params(&p, false, PN_PATTERN_IK);
	if (pn_link_accept(&up_resp, &p, &h))
		abort();
	must_parse(&h, up_resp.hs_pkt, up_resp.hs_pkt_len);
	if (pn_link_input(&up_ini, &h, TS, out, sizeof(out), &n, &ev) || ev != PN_LINK_EV_UP)
		abort();

	/* XX: initiator waiting for HS2, responder waiting for HS3. */
	params(&p, true, PN_PATTERN_XX);
	if (pn_link_connect(&wait_xx, &p))
		abort();
	must_parse(&h, wait_xx.hs_pkt, wait_xx.hs_pkt_len);
	params(&p, false, PN_PATTERN_XX);
	if (pn_link_accept(&wait_hs3, &p, &h) || wait_hs3.state != PN_LINK_WAIT_HS3)
		abort();
	ready = 1;
}

static void check_parse(const struct pn_pkt_hdr *h, const uint8_t *data, size_t size)
{
	static const size_t min[] = {
		[PN_PKT_HS2] = PN_HS2_HDR + PN_IK2_MIN,
		[PN_PKT_HS3] = PN_HS3_HDR + PN_XX3_MIN,
		[PN_PKT_DATA] = PN_DATA_HDR + PN_TAG,
	};
	size_t want;

	if (h->body < data || h->body + h->body_len != data + size)
		abort();
	if (h->type == PN_PKT_RESET) {
		if (size != PN_RESET_LEN || h->body_len != 0)
			abort();
		return;
	}
	if (h->type == PN_PKT_HS1)
		want = PN_HS1_HDR + (h->pattern == PN_PATTERN_IK ? PN_IK1_MIN : PN_XX1_MIN);
	else if (h->type < sizeof(min) / sizeof(min[0]))
		want = min[h->type];
	else
		abort(); /* pn_pkt_parse accepted a type this target does not know */
	if (size < want || size > PN_PKT_RX_MAX)
		abort();
}

static void try_hs2(const struct pn_link *pending, const struct pn_pkt_hdr *h)
{
	static uint8_t out[PN_PKT_RX_MAX];
	enum pn_link_event ev;
	size_t n;

	work = *pending;
	if (pn_link_input(&work, h, TS + 1, out, sizeof(out), &n, &ev) == 0) {
		if (ev != PN_LINK_EV_UP || work.state != PN_LINK_UP)
			abort();
		return;
	}
	if (work.state != PN_LINK_WAIT_HS2 || work.hs.failed ||
	    work.hs.msg_index != pending->hs.msg_index || ev != PN_LINK_EV_NONE)
		abort();
}

static void try_input(const struct pn_link *l, const struct pn_pkt_hdr *h)
{
	static uint8_t out[PN_PKT_RX_MAX];
	enum pn_link_event ev;
	size_t n;

	work = *l;
	if (pn_link_input(&work, h, TS + 1, out, sizeof(out), &n, &ev) == 0) {
		if (h->type == PN_PKT_DATA && (ev != PN_LINK_EV_DATA || n + PN_TAG != h->body_len))
			abort();
	} else if (ev != PN_LINK_EV_NONE || n != 0) {
		abort();
	}
}

static void try_refused(const struct pn_link *l, const struct pn_pkt_hdr *h)
{
	static uint8_t out[PN_PKT_RX_MAX];
	enum pn_link_event ev;
	size_t n;

	work = *l;
	if (pn_link_input(&work, h, TS + 1, out, sizeof(out), &n, &ev) != -EBADMSG ||
	    work.state != l->state)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pn_pkt_hdr h;
	struct pn_link_params p;

	init_once();
	if (pn_pkt_parse(&h, data, size))
		return 0;
	check_parse(&h, data, size);
	switch (h.type) {
	case PN_PKT_HS1:
		params(&p, false, h.pattern);
		if (pn_link_accept(&work, &p, &h) == 0 && work.state != PN_LINK_UP &&
		    work.state != PN_LINK_WAIT_HS3)
			abort();
		break;
	case PN_PKT_HS2:
		try_hs2(&wait_ik, &h);
		try_hs2(&wait_xx, &h);
		break;
	case PN_PKT_HS3:
		try_input(&wait_hs3, &h);
		break;
	case PN_PKT_DATA:
		try_input(&up_resp, &h);
		try_input(&up_ini, &h);
		break;
	case PN_PKT_RESET:
		try_refused(&wait_ik, &h);
		try_refused(&wait_hs3, &h);
		try_refused(&up_resp, &h);
		break;
	default:
		abort(); /* pn_pkt_parse accepted an unknown type */
	}
	pn_link_wipe(&work);
	return 0;
}
