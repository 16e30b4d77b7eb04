/* PortAudio sound device for calls (include/parley/audio_device.h).
 *
 * PortAudio calls us on its own thread with blocks of samples; the event loop reads and
 * writes 20 ms frames on its clock. Two single-producer single-consumer rings of samples
 * connect them (C11 atomics, no locks): capture (device thread writes, loop reads) and
 * playback (loop writes, device thread reads). A full capture ring drops the newest
 * samples, an empty playback ring plays silence; both are counted. Clock drift between
 * the device and the loop shows up as these counts, a few per minute at most. */
#include "parley/audio_device.h"

#include <errno.h>
#include <portaudio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

enum {
	AD_RATE = 48000,
	AD_FRAME = 960,
	AD_RING = AD_FRAME * 8, /* 160 ms each way */
};

struct ring {
	int16_t buf[AD_RING];
	atomic_size_t head; /* written by the producer */
	atomic_size_t tail; /* written by the consumer */
};

struct pn_rt_audio {
	struct pn_audio_ops ops;
	PaStream *stream;
	bool pa_up;
	struct ring cap, play;
	atomic_ulong overruns, underruns;
};

static size_t ring_used(struct ring *r)
{
	return atomic_load_explicit(&r->head, memory_order_acquire) -
	       atomic_load_explicit(&r->tail, memory_order_acquire);
}

static size_t ring_put(struct ring *r, const int16_t *x, size_t n)
{
	size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	size_t room = AD_RING - (h - atomic_load_explicit(&r->tail, memory_order_acquire));

	if (n > room)
		n = room;
	for (size_t i = 0; i < n; i++)
		r->buf[(h + i) % AD_RING] = x[i];
	atomic_store_explicit(&r->head, h + n, memory_order_release);
	return n;
}

static size_t ring_get(struct ring *r, int16_t *x, size_t n)
{
	size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	size_t have = atomic_load_explicit(&r->head, memory_order_acquire) - t;

	if (n > have)
		n = have;
	for (size_t i = 0; i < n; i++)
		x[i] = r->buf[(t + i) % AD_RING];
	atomic_store_explicit(&r->tail, t + n, memory_order_release);
	return n;
}

/* The device thread. */
static int pa_cb(const void *in, void *out, unsigned long frames,
		 const PaStreamCallbackTimeInfo *ti, PaStreamCallbackFlags flags, void *arg)
{
	struct pn_rt_audio *a = arg;
	size_t got;

	(void)ti;
	(void)flags;
	if (in && ring_put(&a->cap, in, frames) < frames)
		atomic_fetch_add(&a->overruns, 1);
	if (out) {
		got = ring_get(&a->play, out, frames);
		if (got < frames) {
			memset((int16_t *)out + got, 0, (frames - got) * sizeof(int16_t));
			atomic_fetch_add(&a->underruns, 1);
		}
	}
	return paContinue;
}

static void ad_stop(void *ctx)
{
	struct pn_rt_audio *a = ctx;

	if (a->stream) {
		Pa_StopStream(a->stream);
		Pa_CloseStream(a->stream);
		a->stream = NULL;
	}
	if (a->pa_up) {
		Pa_Terminate();
		a->pa_up = false;
	}
}

static int ad_start(void *ctx)
{
	struct pn_rt_audio *a = ctx;
	PaError e;

	if (a->stream)
		return 0;
	atomic_store(&a->cap.head, 0);
	atomic_store(&a->cap.tail, 0);
	atomic_store(&a->play.head, 0);
	atomic_store(&a->play.tail, 0);
	e = Pa_Initialize();
	if (e != paNoError) {
		pn_warn("sound device: %s; the call goes on without sound", Pa_GetErrorText(e));
		return -ENODEV;
	}
	a->pa_up = true;
	if (Pa_GetDefaultInputDevice() == paNoDevice || Pa_GetDefaultOutputDevice() == paNoDevice) {
		pn_warn("sound device: no default input and output device; the call goes on without sound");
		ad_stop(a);
		return -ENODEV;
	}
	e = Pa_OpenDefaultStream(&a->stream, 1, 1, paInt16, AD_RATE, AD_FRAME, pa_cb, a);
	if (e == paNoError)
		e = Pa_StartStream(a->stream);
	if (e != paNoError) {
		pn_warn("sound device: %s; the call goes on without sound", Pa_GetErrorText(e));
		ad_stop(a);
		return -ENODEV;
	}
	return 0;
}

static bool ad_read(void *ctx, int16_t pcm[AD_FRAME])
{
	struct pn_rt_audio *a = ctx;

	if (!a->stream || ring_used(&a->cap) < AD_FRAME)
		return false;
	ring_get(&a->cap, pcm, AD_FRAME);
	return true;
}

static void ad_write(void *ctx, const int16_t pcm[AD_FRAME])
{
	struct pn_rt_audio *a = ctx;

	if (a->stream && ring_put(&a->play, pcm, AD_FRAME) < AD_FRAME)
		atomic_fetch_add(&a->overruns, 1);
}

int pn_rt_audio_new(struct pn_rt_audio **out)
{
	struct pn_rt_audio *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	a->ops.ctx = a;
	a->ops.start = ad_start;
	a->ops.stop = ad_stop;
	a->ops.read = ad_read;
	a->ops.write = ad_write;
	*out = a;
	return 0;
}

void pn_rt_audio_free(struct pn_rt_audio *a)
{
	if (!a)
		return;
	ad_stop(a);
	free(a);
}

const struct pn_audio_ops *pn_rt_audio_ops(struct pn_rt_audio *a)
{
	return &a->ops;
}

void pn_rt_audio_counters(const struct pn_rt_audio *a, unsigned long *overruns,
			  unsigned long *underruns)
{
	*overruns = atomic_load(&((struct pn_rt_audio *)a)->overruns);
	*underruns = atomic_load(&((struct pn_rt_audio *)a)->underruns);
}
