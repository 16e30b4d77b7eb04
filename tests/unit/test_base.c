/* Unit tests for src/base: bounded reader/writer, hex/base32, addresses, log levels. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/addr.h"
#include "base/buf.h"
#include "base/hex.h"
#include "base/log.h"

static void rd_scalars_roundtrip(void **state)
{
	uint8_t buf[32];
	struct pn_wr w;
	struct pn_rd r;
	uint8_t a;
	uint16_t b;
	uint32_t c;
	uint64_t d;

	pn_wr_init(&w, buf, sizeof(buf));
	pn_wr_u8(&w, 0xab);
	pn_wr_u16(&w, 0x1234);
	pn_wr_u32(&w, 0xdeadbeef);
	pn_wr_u64(&w, 0x0102030405060708ull);
	assert_int_equal(w.err, 0);
	assert_int_equal(w.len, 15);
	assert_int_equal(buf[1], 0x12); /* big-endian */
	pn_rd_init(&r, buf, w.len);
	assert_int_equal(pn_rd_u8(&r, &a), 0);
	assert_int_equal(pn_rd_u16(&r, &b), 0);
	assert_int_equal(pn_rd_u32(&r, &c), 0);
	assert_int_equal(pn_rd_u64(&r, &d), 0);
	assert_int_equal(a, 0xab);
	assert_int_equal(b, 0x1234);
	assert_int_equal(c, 0xdeadbeef);
	assert_true(d == 0x0102030405060708ull);
	assert_int_equal(pn_rd_end(&r), 0);
}

static void rd_underflow_is_sticky(void **state)
{
	uint8_t buf[3] = {1, 2, 3};
	struct pn_rd r;
	uint32_t v;
	uint8_t u;

	pn_rd_init(&r, buf, sizeof(buf));
	assert_int_equal(pn_rd_u32(&r, &v), -EBADMSG);
	/* After an error even a read that would fit fails. */
	assert_int_equal(pn_rd_u8(&r, &u), -EBADMSG);
	assert_int_equal(pn_rd_end(&r), -EBADMSG);
	assert_int_equal(pn_rd_left(&r), 0);
}

static void rd_trailing_bytes_rejected(void **state)
{
	uint8_t buf[2] = {1, 2};
	struct pn_rd r;
	uint8_t u;

	pn_rd_init(&r, buf, sizeof(buf));
	assert_int_equal(pn_rd_u8(&r, &u), 0);
	assert_int_equal(pn_rd_end(&r), -EBADMSG);
}

static void rd_vec_limits(void **state)
{
	uint8_t buf[] = {5, 'h', 'e', 'l', 'l', 'o'};
	struct pn_rd r;
	const uint8_t *p;
	size_t n;
	char s[6], small[5];

	pn_rd_init(&r, buf, sizeof(buf));
	assert_int_equal(pn_rd_vec8(&r, &p, &n, 4), -EBADMSG); /* over max */
	pn_rd_init(&r, buf, sizeof(buf));
	assert_int_equal(pn_rd_vec8(&r, &p, &n, 5), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(p, "hello", 5);
	pn_rd_init(&r, buf, sizeof(buf));
	assert_int_equal(pn_rd_str8(&r, s, sizeof(s)), 0);
	assert_string_equal(s, "hello");
	pn_rd_init(&r, buf, sizeof(buf));
	assert_int_equal(pn_rd_str8(&r, small, sizeof(small)), -EBADMSG);
	pn_rd_init(&r, buf, 4); /* truncated */
	assert_int_equal(pn_rd_vec8(&r, &p, &n, 64), -EBADMSG);
}

static void rd_str_rejects_nul(void **state)
{
	uint8_t buf[] = {3, 'a', 0, 'b'};
	struct pn_rd r;
	char s[8];

	pn_rd_init(&r, buf, sizeof(buf));
	assert_int_equal(pn_rd_str8(&r, s, sizeof(s)), -EBADMSG);
}

static void wr_overflow_is_sticky(void **state)
{
	uint8_t buf[3];
	struct pn_wr w;

	pn_wr_init(&w, buf, sizeof(buf));
	assert_int_equal(pn_wr_u16(&w, 1), 0);
	assert_int_equal(pn_wr_u16(&w, 2), -ENOSPC);
	assert_int_equal(pn_wr_u8(&w, 3), -ENOSPC);
	assert_int_equal(w.len, 2);
}

static void hex_roundtrip_and_errors(void **state)
{
	uint8_t in[4] = {0x00, 0x7f, 0x80, 0xff}, out[4];
	char s[9];

	assert_string_equal(pn_hex_encode(s, sizeof(s), in, 4), "007f80ff");
	assert_int_equal(pn_hex_decode(out, 4, "007F80ff"), 0);
	assert_memory_equal(in, out, 4);
	assert_int_equal(pn_hex_decode(out, 4, "007f80f"), -EINVAL);
	assert_int_equal(pn_hex_decode(out, 4, "007f80fg"), -EINVAL);
}

static void base32_rfc4648_vectors(void **state)
{
	char s[32];
	uint8_t out[16];
	size_t n;

	/* RFC 4648 section 10, lower case, padding removed. */
	assert_string_equal(pn_base32_encode(s, sizeof(s), "foobar", 6), "mzxw6ytboi");
	assert_string_equal(pn_base32_encode(s, sizeof(s), "f", 1), "my");
	assert_int_equal(pn_base32_decode(out, sizeof(out), &n, "MZXW6YTBOI"), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "foobar", 6);
	assert_int_equal(pn_base32_decode(out, sizeof(out), &n, "mz1"), -EINVAL);
	assert_int_equal(pn_base32_decode(out, 2, &n, "mzxw6ytboi"), -EINVAL);
}

static void addr_parse_format(void **state)
{
	struct pn_addr a, b;
	char s[PN_ADDR_STRLEN];

	assert_int_equal(pn_addr_parse(&a, "198.18.0.1:7700"), 0);
	assert_int_equal(a.family, PN_AF_INET);
	assert_int_equal(a.port, 7700);
	assert_string_equal(pn_addr_str(&a, s), "198.18.0.1:7700");
	assert_int_equal(pn_addr_parse(&b, "[2001:db8::1]:65535"), 0);
	assert_int_equal(b.family, PN_AF_INET6);
	assert_string_equal(pn_addr_str(&b, s), "[2001:db8::1]:65535");
	assert_false(pn_addr_eq(&a, &b));
	assert_int_equal(pn_addr_parse(&a, "198.18.0.1"), -EINVAL);
	assert_int_equal(pn_addr_parse(&a, "198.18.0.1:65536"), -EINVAL);
	assert_int_equal(pn_addr_parse(&a, "198.18.0.1:-1"), -EINVAL);
	assert_int_equal(pn_addr_parse(&a, "localhost:1"), -EINVAL);
	assert_int_equal(pn_addr_parse(&a, "[2001:db8::1:7"), -EINVAL);
}

static void addr_wire_roundtrip(void **state)
{
	struct pn_addr a, b;
	uint8_t buf[32];
	struct pn_wr w;
	struct pn_rd r;

	pn_addr_parse(&a, "[2001:db8::42]:9");
	pn_wr_init(&w, buf, sizeof(buf));
	assert_int_equal(pn_addr_write(&w, &a), 0);
	assert_int_equal(w.len, 19);
	pn_rd_init(&r, buf, w.len);
	assert_int_equal(pn_addr_read(&r, &b), 0);
	assert_true(pn_addr_eq(&a, &b));
	buf[0] = 5; /* unknown family */
	pn_rd_init(&r, buf, w.len);
	assert_int_equal(pn_addr_read(&r, &b), -EBADMSG);
}

static void log_level_parse(void **state)
{
	enum pn_log_level l;

	assert_int_equal(pn_log_parse_level("debug", &l), 0);
	assert_int_equal(l, PN_LOG_DEBUG);
	assert_int_equal(pn_log_parse_level("loud", &l), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rd_scalars_roundtrip),
		cmocka_unit_test(rd_underflow_is_sticky),
		cmocka_unit_test(rd_trailing_bytes_rejected),
		cmocka_unit_test(rd_vec_limits),
		cmocka_unit_test(rd_str_rejects_nul),
		cmocka_unit_test(wr_overflow_is_sticky),
		cmocka_unit_test(hex_roundtrip_and_errors),
		cmocka_unit_test(base32_rfc4648_vectors),
		cmocka_unit_test(addr_parse_format),
		cmocka_unit_test(addr_wire_roundtrip),
		cmocka_unit_test(log_level_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
