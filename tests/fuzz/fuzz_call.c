/* Call signaling frames from a peer device: pn_calls_on_frame on arbitrary bytes, for a
 * device with one call ringing (so frames that name it reach the state machine). */
#include <stdint.h>
#include <string.h>

#include "call/signal.h"
#include "wire/wire.h"

static void f_send(void *ctx, const uint8_t dev[16], const uint8_t *f, size_t n)
{
	(void)ctx;
	(void)dev;
	(void)f;
	(void)n;
}

static void f_random(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	memset(buf, 0x42, len);
}

static enum pn_call_policy f_policy(void *ctx, const char *from, const char *to)
{
	(void)ctx;
	(void)from;
	return strcmp(to, "bob") == 0 ? PN_CALL_ACCEPT : PN_CALL_REFUSE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t dev[16] = {1};
	struct pn_call_ops ops = {.send = f_send, .random = f_random, .offer_policy = f_policy};
	struct pn_calls *cs = pn_calls_new(&ops);
	uint64_t now = 1000;

	if (!cs)
		return 0;
	/* the input is split into frames at 0xff bytes; every frame comes from device 1,
	 * user alice, 50 ms apart, with ticks in between */
	while (size > 0) {
		const uint8_t *end = memchr(data, 0xff, size);
		size_t n = end ? (size_t)(end - data) : size;
		pn_calls_on_frame(cs, now, dev, "alice", data, n);
		now += 50;
		pn_calls_tick(cs, now);
		data += n + (end ? 1 : 0);
		size -= n + (end ? 1 : 0);
	}
	pn_calls_tick(cs, now + 120000);
	pn_calls_free(cs);
	return 0;
}
