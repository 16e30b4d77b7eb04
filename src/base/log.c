#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static pn_log_sink_cb sink_cb;
static void *sink_arg;
static enum pn_log_level cur_level = PN_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void pn_log_set_sink(pn_log_sink_cb cb, void *arg)
{
	sink_cb = cb;
	sink_arg = arg;
}

void pn_log_set_level(enum pn_log_level lvl)
{
	cur_level = lvl;
}

enum pn_log_level pn_log_get_level(void)
{
	return cur_level;
}

int pn_log_parse_level(const char *s, enum pn_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum pn_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void pn_log(enum pn_log_level lvl, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (lvl > cur_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (sink_cb)
		sink_cb(sink_arg, lvl, msg);
	else
		fprintf(stderr, "%s: %s\n", level_names[lvl], msg);
}
