/* The running media of one call on one device: the Opus/AEAD pipeline (media.h) fed
 * from an audio source and drained into a sink, paced in 20 ms frames by the owner's
 * clock. Sources: a WAV file, the echo line (what was heard, played back a second later:
 * the echo test service), the sound device, or silence. Sinks: a WAV file, the sound device
 * or nothing. Sans-I/O apart from
 * the files: the owner calls tick() at next_deadline() and sends what it is handed. */
#ifndef PARLEY_CALL_CALLMEDIA_H
#define PARLEY_CALL_CALLMEDIA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "call/media.h"
#include "parley/client.h"

struct pn_callmedia;

struct pn_callmedia_config {
	const uint8_t *secret;  /* 32 bytes, from the call offer */
	bool caller;
	uint32_t local_tag, remote_tag;
	const char *play;       /* WAV to send, any rate/channels; NULL: silence */
	const char *record;     /* WAV to write what is heard (48 kHz mono); NULL: none */
	bool echo;              /* send back what was heard, PN_CALLMEDIA_ECHO_MS later */
	/* the sound device for a direction without a file (echo cancelled and denoised on
	 * the way in); NULL or unavailable: silence in, nothing out */
	const struct pn_audio_ops *dev;
	uint64_t now;
};

enum { PN_CALLMEDIA_ECHO_MS = 1000 };

/* Checks that play can be read and record created, before a call starts. */
int pn_callmedia_check(const char *play, const char *record, char *err, size_t cap);
int pn_callmedia_new(struct pn_callmedia **out, const struct pn_callmedia_config *cfg, char *err,
		     size_t cap);
void pn_callmedia_free(struct pn_callmedia *m); /* NULL ok; finishes the recording */
uint64_t pn_callmedia_next_deadline(const struct pn_callmedia *m);
/* Runs the frames due by now: capture, send (unless on hold), playout, record, and the
 * receiver report when due. */
void pn_callmedia_tick(struct pn_callmedia *m, uint64_t now, bool hold,
		       void (*send)(void *arg, const uint8_t *pkt, size_t n), void *arg);
int pn_callmedia_on_packet(struct pn_callmedia *m, uint64_t now, const uint8_t *pkt, size_t n);
json_t *pn_callmedia_stats_json(const struct pn_callmedia *m);
double pn_callmedia_mos(const struct pn_callmedia *m);
/* Playout time of the first audio frame decoded from the peer (0 = none yet). */
uint64_t pn_callmedia_first_audio_at(const struct pn_callmedia *m);

#endif
