/* The runtime's sound device: PortAudio's default input and output at 48 kHz mono, fed
 * and drained through lock-free rings so that the device's own thread never waits for
 * the event loop (and the other way round). Opened lazily for each call. */
#ifndef PARLEY_AUDIO_DEVICE_H
#define PARLEY_AUDIO_DEVICE_H

#include "parley/client.h"

#ifdef __cplusplus
extern "C" {
#endif

struct pn_rt_audio;

int pn_rt_audio_new(struct pn_rt_audio **out);
void pn_rt_audio_free(struct pn_rt_audio *a); /* stops the device; NULL ok */
/* The device as the client node takes it. Valid until pn_rt_audio_free. */
const struct pn_audio_ops *pn_rt_audio_ops(struct pn_rt_audio *a);
/* Frames lost: captured with no room in the ring, or played with nothing to play. */
void pn_rt_audio_counters(const struct pn_rt_audio *a, unsigned long *overruns,
			  unsigned long *underruns);

#ifdef __cplusplus
}
#endif
#endif
