/* The voice processing between a sound device and the call: acoustic echo cancellation
 * (what the speaker plays leaks back into the microphone) and noise suppression, with
 * speexdsp (the MDF linear echo canceller, then the preprocessor's denoiser). Sans-I/O:
 * the caller hands in each 20 ms microphone frame together with the frame the speaker
 * played at the same time. */
#ifndef PARLEY_AUDIO_DSP_H
#define PARLEY_AUDIO_DSP_H

#include <stdbool.h>
#include <stdint.h>

enum { PN_DSP_RATE = 48000, PN_DSP_FRAME = 960, PN_DSP_TAIL_MS = 100 };

struct pn_voice_dsp;

struct pn_voice_dsp_config {
	bool aec;       /* echo cancellation (needs the speaker frames) */
	bool denoise;   /* noise suppression */
	int tail_ms;    /* echo path length covered; 0 = PN_DSP_TAIL_MS */
};

/* NULL cfg: both on. Returns NULL when out of memory. */
struct pn_voice_dsp *pn_voice_dsp_new(const struct pn_voice_dsp_config *cfg);
void pn_voice_dsp_free(struct pn_voice_dsp *d); /* NULL ok */
/* mic: what the microphone captured; played: what the speaker played during the same
 * 20 ms (NULL = silence); out: the cleaned frame (may be mic). */
void pn_voice_dsp_process(struct pn_voice_dsp *d, const int16_t mic[PN_DSP_FRAME],
			  const int16_t *played, int16_t out[PN_DSP_FRAME]);

#endif
