#include "vmm/aml.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Opcodes and prefixes (ACPI 6.x, 20.2). */
#define AML_ZERO          0x00
#define AML_ONE           0x01
#define AML_NAME_OP       0x08
#define AML_BYTE_PREFIX   0x0a
#define AML_WORD_PREFIX   0x0b
#define AML_DWORD_PREFIX  0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX  0x0e
#define AML_SCOPE_OP      0x10
#define AML_BUFFER_OP     0x11
#define AML_PACKAGE_OP    0x12
#define AML_DUAL_NAME     0x2e
#define AML_MULTI_NAME    0x2f
#define AML_EXT_OP        0x5b
#define AML_DEVICE_OP     0x82
#define AML_ROOT_CHAR     '\\'
#define AML_PARENT_CHAR   '^'

enum {
	SCOPE_PLAIN,
	SCOPE_BUFFER
};

/* The largest PkgLength: 28 bits. */
#define PKGLEN_MAX 0x0fffffffu

void aml_init(struct aml *a)
{
	memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
	free(a->buf);
	a->buf = NULL;
	a->len = a->cap = 0;
}

static void fail(struct aml *a, int err)
{
	if (!a->err)
		a->err = err;
}

int aml_finish(struct aml *a)
{
	if (a->depth)
		fail(a, -EINVAL);
	return a->err;
}

static int reserve(struct aml *a, size_t more)
{
	size_t cap = a->cap ? a->cap : 256;
	uint8_t *p;

	if (a->err)
		return a->err;
	if (a->len + more <= a->cap)
		return 0;
	while (cap < a->len + more)
		cap *= 2;
	p = realloc(a->buf, cap);
	if (!p) {
		fail(a, -ENOMEM);
		return -ENOMEM;
	}
	a->buf = p;
	a->cap = cap;
	return 0;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (reserve(a, n))
		return;
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

static void le(struct aml *a, uint64_t v, unsigned n)
{
	uint8_t b[8];

	for (unsigned i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	aml_bytes(a, b, n);
}

/* Insert @n bytes at @at, moving what follows. */
static void insert(struct aml *a, size_t at, const uint8_t *p, size_t n)
{
	if (reserve(a, n))
		return;
	memmove(a->buf + at + n, a->buf + at, a->len - at);
	memcpy(a->buf + at, p, n);
	a->len += n;
}

unsigned aml_pkglen(size_t body, uint8_t out[4])
{
	uint32_t v;
	unsigned n;

	/*
	 * The value counts its own bytes, so the size depends on itself: one byte
	 * holds up to 63 (6 bits); two to four bytes hold 4 + 8k bits, the low
	 * nibble in the lead byte (whose top two bits are the count of bytes after).
	 */
	if (body + 1 <= 0x3f) {
		out[0] = (uint8_t)(body + 1);
		return 1;
	}
	if (body + 2 <= 0xfff)
		n = 2;
	else if (body + 3 <= 0xfffff)
		n = 3;
	else if (body + 4 <= PKGLEN_MAX)
		n = 4;
	else
		return 0;
	v = (uint32_t)(body + n);
	out[0] = (uint8_t)(((n - 1) << 6) | (v & 0xf));
	for (unsigned i = 1; i < n; i++)
		out[i] = (uint8_t)(v >> (4 + 8 * (i - 1)));
	return n;
}

static int seg_char(char c, bool first)
{
	return (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

void aml_name(struct aml *a, const char *path)
{
	const char *p = path, *s;
	char segs[255][4];
	unsigned n = 0;

	if (*p == AML_ROOT_CHAR) {
		byte(a, AML_ROOT_CHAR);
		p++;
	} else {
		while (*p == AML_PARENT_CHAR) {
			byte(a, AML_PARENT_CHAR);
			p++;
		}
	}
	for (s = p; *s;) {
		unsigned len = 0;

		if (n == ARRAY_SIZE(segs)) {
			fail(a, -EINVAL);
			return;
		}
		memset(segs[n], '_', 4);
		while (*s && *s != '.') {
			if (len == 4 || !seg_char(*s, len == 0)) {
				fail(a, -EINVAL);
				return;
			}
			segs[n][len++] = *s++;
		}
		if (!len) {
			fail(a, -EINVAL);
			return;
		}
		n++;
		if (*s == '.' && !*++s) { /* a trailing dot */
			fail(a, -EINVAL);
			return;
		}
	}
	if (n == 0) {
		byte(a, 0); /* NullName */
		return;
	}
	if (n == 2) {
		byte(a, AML_DUAL_NAME);
	} else if (n > 2) {
		byte(a, AML_MULTI_NAME);
		byte(a, (uint8_t)n);
	}
	aml_bytes(a, segs, 4 * (size_t)n);
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		byte(a, AML_ZERO);
	} else if (v == 1) {
		byte(a, AML_ONE);
	} else if (v <= UINT8_MAX) {
		byte(a, AML_BYTE_PREFIX);
		le(a, v, 1);
	} else if (v <= UINT16_MAX) {
		byte(a, AML_WORD_PREFIX);
		le(a, v, 2);
	} else if (v <= UINT32_MAX) {
		byte(a, AML_DWORD_PREFIX);
		le(a, v, 4);
	} else {
		byte(a, AML_QWORD_PREFIX);
		le(a, v, 8);
	}
}

void aml_string(struct aml *a, const char *s)
{
	for (const char *c = s; *c; c++) {
		if (*c < 0x20 || *c > 0x7e) {
			fail(a, -EINVAL);
			return;
		}
	}
	byte(a, AML_STRING_PREFIX);
	aml_bytes(a, s, strlen(s) + 1);
}

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint8_t b[4];
	uint16_t vendor = 0;

	if (strlen(id) != 7) {
		fail(a, -EINVAL);
		return;
	}
	for (unsigned i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			fail(a, -EINVAL);
			return;
		}
		vendor = (uint16_t)(vendor << 5 | (id[i] - 0x40));
	}
	for (unsigned i = 3; i < 7; i++) {
		if (hex(id[i]) < 0) {
			fail(a, -EINVAL);
			return;
		}
	}
	/* Big-endian on the wire: the vendor's 15 bits, then the product's 4 hex digits. */
	b[0] = (uint8_t)(vendor >> 8);
	b[1] = (uint8_t)vendor;
	b[2] = (uint8_t)(hex(id[3]) << 4 | hex(id[4]));
	b[3] = (uint8_t)(hex(id[5]) << 4 | hex(id[6]));
	byte(a, AML_DWORD_PREFIX);
	aml_bytes(a, b, 4);
}

void aml_name_decl(struct aml *a, const char *path)
{
	byte(a, AML_NAME_OP);
	aml_name(a, path);
}

static void open_scope(struct aml *a, uint8_t kind)
{
	if (a->depth == AML_MAX_DEPTH) {
		fail(a, -E2BIG);
		return;
	}
	a->open[a->depth].at = a->len;
	a->open[a->depth].kind = kind;
	a->depth++;
}

void aml_scope(struct aml *a, const char *path)
{
	byte(a, AML_SCOPE_OP);
	open_scope(a, SCOPE_PLAIN);
	aml_name(a, path);
}

void aml_device(struct aml *a, const char *path)
{
	byte(a, AML_EXT_OP);
	byte(a, AML_DEVICE_OP);
	open_scope(a, SCOPE_PLAIN);
	aml_name(a, path);
}

void aml_package(struct aml *a, unsigned nelems)
{
	if (nelems > UINT8_MAX) { /* VarPackage is not needed here */
		fail(a, -E2BIG);
		return;
	}
	byte(a, AML_PACKAGE_OP);
	open_scope(a, SCOPE_PLAIN);
	byte(a, (uint8_t)nelems);
}

void aml_buffer(struct aml *a)
{
	byte(a, AML_BUFFER_OP);
	open_scope(a, SCOPE_BUFFER);
}

void aml_end(struct aml *a)
{
	uint8_t head[4 + 9];
	size_t at, body;
	unsigned n = 0;

	if (a->err)
		return;
	if (!a->depth) {
		fail(a, -EINVAL);
		return;
	}
	a->depth--;
	at = a->open[a->depth].at;
	body = a->len - at;
	if (a->open[a->depth].kind == SCOPE_BUFFER) {
		/* BufferSize comes before the bytes, inside the PkgLength. */
		struct aml size;

		aml_init(&size);
		aml_integer(&size, body);
		if (size.err) {
			fail(a, size.err);
			aml_free(&size);
			return;
		}
		n = aml_pkglen(body + size.len, head);
		memcpy(head + n, size.buf, size.len);
		body = size.len; /* now: the bytes to insert after the PkgLength */
		aml_free(&size);
		if (!n) {
			fail(a, -E2BIG);
			return;
		}
		insert(a, at, head, n + body);
		return;
	}
	n = aml_pkglen(body, head);
	if (!n) {
		fail(a, -E2BIG);
		return;
	}
	insert(a, at, head, n);
}

/* Resource descriptors: small items have a one-byte header (type << 3 | length). */
#define RES_IRQ      0x22 /* IRQ, 2 bytes: no flags byte */
#define RES_IO       0x47
#define RES_END      0x79
#define RES_MEM32FIX 0x86
#define RES_EXT_IRQ  0x89

void aml_res_io(struct aml *a, uint16_t base, uint8_t len)
{
	uint8_t d[8] = {
		RES_IO,        0x01 /* Decode16 */,  (uint8_t)base,     (uint8_t)(base >> 8),
		(uint8_t)base, (uint8_t)(base >> 8), 1 /* alignment */, len};

	aml_bytes(a, d, sizeof(d));
}

void aml_res_irq(struct aml *a, unsigned irq)
{
	uint16_t mask = (uint16_t)(1u << irq);
	uint8_t d[3] = {RES_IRQ, (uint8_t)mask, (uint8_t)(mask >> 8)};

	if (irq > 15) {
		fail(a, -EINVAL);
		return;
	}
	aml_bytes(a, d, sizeof(d));
}

void aml_res_mem32(struct aml *a, int writable, uint32_t base, uint32_t len)
{
	byte(a, RES_MEM32FIX);
	le(a, 9, 2);
	byte(a, writable ? 1 : 0);
	le(a, base, 4);
	le(a, len, 4);
}

void aml_res_interrupt(struct aml *a, unsigned flags, uint32_t gsi)
{
	byte(a, RES_EXT_IRQ);
	le(a, 6, 2);
	byte(a, (uint8_t)(flags & 0x0f));
	byte(a, 1); /* one interrupt in the table */
	le(a, gsi, 4);
}

void aml_res_end(struct aml *a)
{
	uint8_t d[2] = {RES_END, 0};

	aml_bytes(a, d, sizeof(d));
}
