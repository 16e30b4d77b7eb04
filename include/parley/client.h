/* The client node (one per device), sans-I/O. It is driven through struct pn_node_ops by a
 * runtime or the simulator, and commanded through JSON requests: the control API
 * (src/api) is a thin framing layer over pn_client_request(), and docs/API.md documents
 * every command and event. */
#ifndef PARLEY_CLIENT_H
#define PARLEY_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "parley/env.h"
#include "parley/network.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pn_client;

/* A sound device, as the host provides it (the runtime's PortAudio device; none in the
 * simulator): 20 ms frames of 48 kHz mono, 16-bit. A call that has no file to play or to
 * record to uses it for that direction. */
struct pn_audio_ops {
	void *ctx;
	/* Opens the device for a call: 0, or -errno (no device: the call goes on silent). */
	int (*start)(void *ctx);
	void (*stop)(void *ctx);
	/* The next captured frame (960 samples); false when none is ready yet. */
	bool (*read)(void *ctx, int16_t pcm[960]);
	/* A frame to play. */
	void (*write)(void *ctx, const int16_t pcm[960]);
};

struct pn_client_config {
	const struct pn_env *env;
	const struct pn_network *net;
	const char *db_path;    /* SQLite file (":memory:" in simulations) */
	const char *device_name; /* shown in device lists; default "device" */
	/* The echo test service: answer every call (from anyone) and play back what was
	 * heard, a second later. */
	bool echo_bot;
	/* The sound device for calls without files; NULL: none (silence, nothing played). */
	const struct pn_audio_ops *audio;
};

/* Completion of a request. On success err is 0 and result is a JSON object (borrowed:
 * valid during the call). On failure err < 0, code is a stable machine-readable string
 * ("bad_request", "not_logged_in", "no_such_user", ...) and message a human sentence. */
typedef void (*pn_client_reply_cb)(void *arg, int err, const char *code, const char *message,
				   json_t *result);
/* An asynchronous event ("message.received", ...); data is borrowed. */
typedef void (*pn_client_event_cb)(void *arg, const char *event, json_t *data);

int pn_client_new(struct pn_client **out, const struct pn_client_config *cfg);
void pn_client_free(struct pn_client *c); /* NULL ok */
extern const struct pn_node_ops pn_client_ops;

void pn_client_set_event_cb(struct pn_client *c, pn_client_event_cb cb, void *arg);
/* Runs command cmd with args (an object, may be NULL). cb is called exactly once, maybe
 * before this returns, unless pn_client_cancel() drops it first. */
void pn_client_request(struct pn_client *c, const char *cmd, json_t *args,
		       pn_client_reply_cb cb, void *arg);
/* Forget every pending callback whose arg is arg (its owner is going away). */
void pn_client_cancel(struct pn_client *c, void *arg);
/* True once "shutdown" was requested through the API. */
bool pn_client_wants_exit(const struct pn_client *c);

#ifdef __cplusplus
}
#endif
#endif
