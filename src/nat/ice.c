/* Direct paths between two devices: candidate frames and the check state machine
 * (ice.h explains the design; docs/NAT.md the reasons). */
#include "nat/ice.h"

#include <errno.h>
#include <string.h>

#include "base/addr.h"
#include "base/buf.h"
#include "wire/wire.h"

/* ---- frames ----------------------------------------------------------------------- */

static bool cand_type_ok(uint8_t t)
{
	return t == PN_CAND_HOST || t == PN_CAND_SRFLX || t == PN_CAND_PRFLX;
}

int pn_ice_frame_decode(struct pn_ice_frame *f, const uint8_t *buf, size_t len)
{
	struct pn_rd r;
	uint8_t type;

	memset(f, 0, sizeof(*f));
	pn_rd_init(&r, buf, len);
	if (pn_rd_u8(&r, &type) || type != PN_F_NAT || pn_rd_u8(&r, &f->kind))
		return -EBADMSG;
	switch (f->kind) {
	case PN_ICE_CANDS:
		pn_rd_u32(&r, &f->gen);
		pn_rd_u8(&r, &f->flags);
		if (pn_rd_u8(&r, &f->n) || f->n > PN_ICE_MAX_CANDS)
			return -EBADMSG;
		for (unsigned i = 0; i < f->n; i++) {
			if (pn_rd_u8(&r, &f->cands[i].type) || !cand_type_ok(f->cands[i].type) ||
			    pn_addr_read(&r, &f->cands[i].addr))
				return -EBADMSG;
		}
		break;
	case PN_ICE_CHECK:
		pn_rd_u64(&r, &f->tid);
		pn_rd_u8(&r, &f->flags);
		break;
	case PN_ICE_CHECK_OK:
		pn_rd_u64(&r, &f->tid);
		pn_rd_u8(&r, &f->flags);
		if (pn_addr_read(&r, &f->mapped))
			return -EBADMSG;
		break;
	case PN_ICE_STREAM: {
		const uint8_t *p;
		pn_rd_u32(&r, &f->seq);
		if (pn_rd_vec16(&r, &p, &f->filler, PN_ICE_STREAM_MAX))
			return -EBADMSG;
		break;
	}
	default:
		return -EBADMSG;
	}
	return pn_rd_end(&r);
}

int pn_ice_cands_encode(uint8_t *out, size_t cap, uint32_t gen, uint8_t flags,
			const struct pn_cand *c, unsigned n)
{
	struct pn_wr w;

	if (n > PN_ICE_MAX_CANDS)
		return -EINVAL;
	pn_wr_init(&w, out, cap);
	pn_wr_u8(&w, PN_F_NAT);
	pn_wr_u8(&w, PN_ICE_CANDS);
	pn_wr_u32(&w, gen);
	pn_wr_u8(&w, flags);
	pn_wr_u8(&w, (uint8_t)n);
	for (unsigned i = 0; i < n; i++) {
		if (!cand_type_ok(c[i].type))
			return -EINVAL;
		pn_wr_u8(&w, c[i].type);
		if (pn_addr_write(&w, &c[i].addr) == -EINVAL)
			return -EINVAL;
	}
	return w.err ? w.err : (int)w.len;
}

int pn_ice_check_encode(uint8_t *out, size_t cap, bool ok, uint64_t tid, uint8_t flags,
			const struct pn_addr *mapped)
{
	struct pn_wr w;

	pn_wr_init(&w, out, cap);
	pn_wr_u8(&w, PN_F_NAT);
	pn_wr_u8(&w, ok ? PN_ICE_CHECK_OK : PN_ICE_CHECK);
	pn_wr_u64(&w, tid);
	pn_wr_u8(&w, flags);
	if (ok && (!mapped || pn_addr_write(&w, mapped) == -EINVAL))
		return -EINVAL;
	return w.err ? w.err : (int)w.len;
}

int pn_ice_stream_encode(uint8_t *out, size_t cap, uint32_t seq, size_t filler)
{
	struct pn_wr w;
	static const uint8_t zero[PN_ICE_STREAM_MAX];

	if (filler > PN_ICE_STREAM_MAX)
		return -EINVAL;
	pn_wr_init(&w, out, cap);
	pn_wr_u8(&w, PN_F_NAT);
	pn_wr_u8(&w, PN_ICE_STREAM);
	pn_wr_u32(&w, seq);
	pn_wr_vec16(&w, zero, filler);
	return w.err ? w.err : (int)w.len;
}

/* ---- the check state machine ------------------------------------------------------ */

void pn_ice_init(struct pn_ice *ice, bool controlling)
{
	memset(ice, 0, sizeof(*ice));
	ice->controlling = controlling;
	ice->selected = -1;
	ice->ctr = 1;
}

void pn_ice_stop(struct pn_ice *ice)
{
	pn_ice_init(ice, ice->controlling);
}

/* Only the controlling side sends keepalives (its check and the answer refresh the NAT
 * bindings on both sides); 0..5 s of jitter, taken from the transaction counter (this
 * module has no randomness of its own). The controlled side checks only when asked
 * (pn_ice_recheck) and otherwise watches what arrives. */
static uint64_t consent_next(struct pn_ice *ice, uint64_t now)
{
	if (!ice->controlling)
		return UINT64_MAX;
	return now + PN_ICE_CONSENT_MS + (ice->ctr * 2654435761u) % 5000u;
}

/* The controlled side's limit: no keepalive from the controlling side for this long. */
static uint64_t quiet_limit(const struct pn_ice *ice)
{
	return ice->last_rx + PN_ICE_CONSENT_MS + 5000 + 2 * PN_ICE_CONSENT_FAIL_MS;
}

static int pair_find(const struct pn_ice *ice, const struct pn_addr *a)
{
	for (unsigned i = 0; i < ice->n; i++)
		if (pn_addr_eq(&ice->pairs[i].remote, a))
			return (int)i;
	return -1;
}

bool pn_ice_knows(const struct pn_ice *ice, const struct pn_addr *from)
{
	return pair_find(ice, from) >= 0;
}

static void pair_reset(struct pn_ice_pair *p, uint64_t now)
{
	p->state = PN_PAIR_WAITING;
	p->nominating = false;
	p->next_at = now;
	p->first_at = 0;
}

/* Rank: IPv6 first (RFC 8445 §5.1.2 suggests preferring it; it needs no NAT), then host,
 * server-reflexive, peer-reflexive. */
static unsigned rank(const struct pn_cand *c)
{
	return (c->addr.family == PN_AF_INET6 ? 0 : 10) + c->type;
}

void pn_ice_set_remote(struct pn_ice *ice, const struct pn_cand *c, unsigned n, unsigned fams,
		       uint64_t now)
{
	struct pn_ice_pair keep;
	bool had = ice->selected >= 0;
	const struct pn_cand *sorted[PN_ICE_MAX_CANDS];
	unsigned m = 0;

	if (had)
		keep = ice->pairs[ice->selected];
	if (n > PN_ICE_MAX_CANDS)
		n = PN_ICE_MAX_CANDS;
	for (unsigned i = 0; i < n; i++) {
		unsigned fam = c[i].addr.family == PN_AF_INET ? 1 : c[i].addr.family == PN_AF_INET6 ? 2 : 0;
		unsigned j;
		if (!(fam & fams) || c[i].addr.port == 0)
			continue;
		for (j = 0; j < m; j++)
			if (pn_addr_eq(&sorted[j]->addr, &c[i].addr))
				break;
		if (j < m)
			continue;
		/* insertion sort by rank, stable */
		for (j = m; j > 0 && rank(sorted[j - 1]) > rank(&c[i]); j--)
			sorted[j] = sorted[j - 1];
		sorted[j] = &c[i];
		m++;
	}
	ice->n = 0;
	ice->selected = -1;
	for (unsigned i = 0; i < m; i++) {
		struct pn_ice_pair *p = &ice->pairs[ice->n++];
		memset(p, 0, sizeof(*p));
		p->remote = sorted[i]->addr;
		p->type = sorted[i]->type;
		pair_reset(p, now);
	}
	if (had) {
		int k = pair_find(ice, &keep.remote);
		if (k < 0 && ice->n < PN_ICE_MAX_PAIRS) {
			k = (int)ice->n++;
			ice->pairs[k] = keep;
		}
		if (k >= 0) {
			ice->pairs[k].state = PN_PAIR_SUCCEEDED;
			ice->pairs[k].nominating = false;
			ice->selected = k;
			/* something moved: see now whether the path in use still answers */
			ice->consent_at = now;
			ice->consent_sent_at = 0;
		}
	}
	ice->active = true;
	ice->round_at = 0;
	ice->first_ok_at = 0;
	ice->next_check_at = now;
}

static void path_lost(struct pn_ice *ice, uint64_t now)
{
	ice->pairs[ice->selected].state = PN_PAIR_FAILED;
	ice->selected = -1;
	ice->paths_lost++;
	ice->consent_sent_at = 0;
	/* a new round at once: the peer may only have moved */
	for (unsigned i = 0; i < ice->n; i++)
		pair_reset(&ice->pairs[i], now);
	ice->first_ok_at = 0;
	ice->round_at = 0;
}

/* Controlling side: nominate the best pair that works once every better one has failed,
 * or a short wait after the first success (a better pair may still be on its way). */
static void maybe_nominate(struct pn_ice *ice, uint64_t now)
{
	if (!ice->controlling || ice->selected >= 0)
		return;
	for (unsigned i = 0; i < ice->n; i++) {
		struct pn_ice_pair *p = &ice->pairs[i];
		if (p->nominating)
			return;
		if (p->state == PN_PAIR_SUCCEEDED) {
			p->nominating = true;
			p->first_at = now;
			p->next_at = now;
			p->rto = PN_ICE_RTO_MS;
			p->tid_base = ice->ctr;
			return;
		}
		if (p->state != PN_PAIR_FAILED && now < ice->first_ok_at + PN_ICE_NOMINATE_WAIT_MS)
			return;
	}
}

static bool pair_due(const struct pn_ice_pair *p, uint64_t now)
{
	if (p->next_at > now)
		return false;
	return p->state == PN_PAIR_WAITING || p->state == PN_PAIR_IN_PROGRESS || p->nominating;
}

bool pn_ice_poll(struct pn_ice *ice, uint64_t now, struct pn_ice_out *out)
{
	if (!ice->active)
		return false;
	if (ice->selected >= 0) {
		struct pn_ice_pair *s = &ice->pairs[ice->selected];
		if ((ice->consent_sent_at && ice->last_rx < ice->consent_sent_at &&
		     now >= ice->consent_sent_at + PN_ICE_CONSENT_FAIL_MS) ||
		    (!ice->controlling && now >= quiet_limit(ice))) {
			path_lost(ice, now);
		} else if (now >= ice->consent_at) {
			if (!ice->consent_sent_at) {
				ice->consent_sent_at = now;
				s->tid_base = ice->ctr;
			}
			ice->consent_at = now + 1000;
			out->to = s->remote;
			out->tid = ice->ctr++ << 8 | (uint64_t)ice->selected;
			out->flags = 0;
			ice->checks_sent++;
			return true;
		}
	}
	/* with a path in use the other pairs rest: it is kept until consent fails or the
	 * peer's candidates change (a new round) */
	if (ice->selected >= 0)
		return false;
	maybe_nominate(ice, now);
	if (now < ice->next_check_at)
		return false;
	for (unsigned i = 0; i < ice->n; i++) {
		struct pn_ice_pair *p = &ice->pairs[i];
		if (!pair_due(p, now))
			continue;
		if (p->state == PN_PAIR_WAITING) {
			p->state = PN_PAIR_IN_PROGRESS;
			p->first_at = now;
			p->rto = PN_ICE_RTO_MS;
			p->tid_base = ice->ctr;
		}
		if (now - p->first_at >= PN_ICE_PAIR_FAIL_MS) {
			p->state = PN_PAIR_FAILED;
			p->nominating = false;
			continue;
		}
		out->to = p->remote;
		out->tid = ice->ctr++ << 8 | i;
		out->flags = p->nominating ? PN_ICE_F_NOMINATE : 0;
		p->next_at = now + p->rto;
		p->rto = p->rto * 2 > PN_ICE_RTO_MAX_MS ? PN_ICE_RTO_MAX_MS : p->rto * 2;
		ice->next_check_at = now + PN_ICE_TA_MS;
		ice->checks_sent++;
		return true;
	}
	/* Nothing left to check and no path: try the whole list again later. */
	if (ice->selected < 0 && ice->n > 0) {
		bool busy = false;
		for (unsigned i = 0; i < ice->n; i++)
			if (ice->pairs[i].state == PN_PAIR_WAITING ||
			    ice->pairs[i].state == PN_PAIR_IN_PROGRESS || ice->pairs[i].nominating ||
			    ice->pairs[i].state == PN_PAIR_SUCCEEDED)
				busy = true;
		if (!busy && ice->round_at == 0) {
			ice->round_at = now + PN_ICE_ROUND_MS;
		} else if (!busy && now >= ice->round_at) {
			ice->round_at = 0;
			ice->rounds++;
			ice->first_ok_at = 0;
			for (unsigned i = 0; i < ice->n; i++)
				pair_reset(&ice->pairs[i], now);
			ice->next_check_at = now;
		}
	}
	return false;
}

uint64_t pn_ice_deadline(const struct pn_ice *ice)
{
	uint64_t t = UINT64_MAX;

	if (!ice->active)
		return t;
	if (ice->selected >= 0) {
		t = ice->consent_at;
		if (ice->consent_sent_at && ice->last_rx < ice->consent_sent_at &&
		    ice->consent_sent_at + PN_ICE_CONSENT_FAIL_MS < t)
			t = ice->consent_sent_at + PN_ICE_CONSENT_FAIL_MS;
		if (!ice->controlling && quiet_limit(ice) < t)
			t = quiet_limit(ice);
	}
	bool nominating = false, succeeded = false;
	for (unsigned i = 0; i < ice->n && ice->selected < 0; i++) {
		const struct pn_ice_pair *p = &ice->pairs[i];
		uint64_t at;
		if (p->state == PN_PAIR_WAITING || p->state == PN_PAIR_IN_PROGRESS || p->nominating) {
			at = p->next_at > ice->next_check_at ? p->next_at : ice->next_check_at;
			if (at < t)
				t = at;
		}
		nominating |= p->nominating;
		succeeded |= p->state == PN_PAIR_SUCCEEDED;
	}
	/* the controlling side waits a little for a better pair before nominating */
	if (ice->controlling && ice->selected < 0 && succeeded && !nominating &&
	    ice->first_ok_at + PN_ICE_NOMINATE_WAIT_MS < t)
		t = ice->first_ok_at + PN_ICE_NOMINATE_WAIT_MS;
	if (ice->round_at && ice->round_at < t)
		t = ice->round_at;
	return t;
}

static bool select_pair(struct pn_ice *ice, int i, uint64_t now)
{
	bool changed = ice->selected != i;

	ice->pairs[i].state = PN_PAIR_SUCCEEDED;
	ice->pairs[i].nominating = false;
	ice->selected = i;
	ice->round_at = 0;
	if (changed) {
		ice->selected_at = now;
		ice->consent_sent_at = 0;
		ice->last_rx = now;
		ice->consent_at = consent_next(ice, now);
	}
	return changed;
}

bool pn_ice_on_check(struct pn_ice *ice, uint64_t now, const struct pn_addr *from, uint8_t flags)
{
	int i = pair_find(ice, from);

	if (i < 0) {
		if (ice->n >= PN_ICE_MAX_PAIRS)
			return false;
		i = (int)ice->n++;
		memset(&ice->pairs[i], 0, sizeof(ice->pairs[i]));
		ice->pairs[i].remote = *from;
		ice->pairs[i].type = PN_CAND_PRFLX;
		pair_reset(&ice->pairs[i], now);
		ice->active = true;
		ice->round_at = 0;
	} else if (ice->pairs[i].state == PN_PAIR_FAILED ||
		   (ice->pairs[i].state == PN_PAIR_WAITING && ice->pairs[i].next_at > now)) {
		/* triggered check: the peer just reached us from there, so the way back is
		 * open now */
		pair_reset(&ice->pairs[i], now);
		ice->round_at = 0;
	}
	if (i == ice->selected)
		ice->last_rx = now;
	if (!ice->controlling && (flags & PN_ICE_F_NOMINATE))
		return select_pair(ice, i, now);
	return false;
}

bool pn_ice_on_ok(struct pn_ice *ice, uint64_t now, const struct pn_addr *from, uint64_t tid,
		  uint8_t flags, const struct pn_addr *mapped)
{
	unsigned i = (unsigned)(tid & 0xff);
	uint64_t c = tid >> 8;
	struct pn_ice_pair *p;

	if (i >= ice->n)
		return false;
	p = &ice->pairs[i];
	/* the answer must come from where the check went, to the current transaction */
	if (c < p->tid_base || c >= ice->ctr || !pn_addr_eq(from, &p->remote))
		return false;
	if (mapped)
		ice->mapped = *mapped;
	if ((int)i == ice->selected) {
		ice->last_rx = now;
		ice->consent_sent_at = 0;
		ice->consent_at = consent_next(ice, now);
		return false;
	}
	if (p->state == PN_PAIR_IN_PROGRESS || p->state == PN_PAIR_WAITING) {
		p->state = PN_PAIR_SUCCEEDED;
		p->rtt_ms = (uint32_t)(now - p->first_at);
		ice->checks_ok++;
		if (!ice->first_ok_at)
			ice->first_ok_at = now;
	}
	if (ice->controlling && p->nominating && (flags & PN_ICE_F_NOMINATE))
		return select_pair(ice, (int)i, now);
	return false;
}

void pn_ice_on_rx(struct pn_ice *ice, uint64_t now, const struct pn_addr *from)
{
	if (ice->selected >= 0 && pn_addr_eq(from, &ice->pairs[ice->selected].remote))
		ice->last_rx = now;
}

void pn_ice_send_failed(struct pn_ice *ice, const struct pn_addr *to)
{
	int i = pair_find(ice, to);

	/* no route there (a peer's private address seen from another network): the pair
	 * can never work, and waiting for it would hold back the nomination */
	if (i >= 0 && i != ice->selected && ice->pairs[i].state != PN_PAIR_SUCCEEDED) {
		ice->pairs[i].state = PN_PAIR_FAILED;
		ice->pairs[i].nominating = false;
	}
}

void pn_ice_recheck(struct pn_ice *ice, uint64_t now)
{
	if (ice->selected >= 0 && !ice->consent_sent_at)
		ice->consent_at = now;
}

const struct pn_addr *pn_ice_selected(const struct pn_ice *ice)
{
	return ice->active && ice->selected >= 0 ? &ice->pairs[ice->selected].remote : NULL;
}
