/* Logging with levels. Protocol code never reads a clock, so the sink (installed by the
 * runtime or the simulator) adds timestamps. Default sink: stderr, level INFO.
 * Passwords and private keys are never passed to the log. */
#ifndef PARLEY_BASE_LOG_H
#define PARLEY_BASE_LOG_H

enum pn_log_level { PN_LOG_ERROR = 0, PN_LOG_WARN = 1, PN_LOG_INFO = 2, PN_LOG_DEBUG = 3 };

typedef void (*pn_log_sink_cb)(void *arg, enum pn_log_level lvl, const char *msg);

void pn_log_set_sink(pn_log_sink_cb cb, void *arg);
void pn_log_set_level(enum pn_log_level lvl);
enum pn_log_level pn_log_get_level(void);
/* Parses "error", "warn", "info", "debug"; -EINVAL on anything else. */
int pn_log_parse_level(const char *s, enum pn_log_level *out);
void pn_log(enum pn_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define pn_err(...) pn_log(PN_LOG_ERROR, __VA_ARGS__)
#define pn_warn(...) pn_log(PN_LOG_WARN, __VA_ARGS__)
#define pn_info(...) pn_log(PN_LOG_INFO, __VA_ARGS__)
#define pn_dbg(...)                                                                                \
	do {                                                                                       \
		if (pn_log_get_level() >= PN_LOG_DEBUG)                                            \
			pn_log(PN_LOG_DEBUG, __VA_ARGS__);                                         \
	} while (0)

#endif
