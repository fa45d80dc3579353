/*
 * A small AML encoder (ACPI 6.x, section 20): enough to write a DSDT of
 * devices with names, integers, strings, EISA ids, packages and resource
 * templates. Bytes go into a growing buffer; scopes (Scope, Device, Package,
 * Buffer) are opened and closed like brackets, and their PkgLength is
 * inserted when they close, in the shortest encoding. The first error is
 * kept and every later call does nothing, so a builder checks once, at
 * aml_finish().
 */
#ifndef HUGEVMM_VMM_AML_H
#define HUGEVMM_VMM_AML_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

#define AML_MAX_DEPTH 16

/* ResourceTemplate flags for aml_res_interrupt(). */
#define AML_IRQ_CONSUMER   0x01 /* ResourceConsumer (else ResourceProducer) */
#define AML_IRQ_EDGE       0x02 /* Edge (else Level) */
#define AML_IRQ_ACTIVE_LOW 0x04 /* ActiveLow (else ActiveHigh) */
#define AML_IRQ_SHARED     0x08 /* Shared (else Exclusive) */

struct aml {
	uint8_t *buf;
	size_t len, cap;
	int err; /* the first error: -ENOMEM, -EINVAL (bad name, unbalanced scopes), -E2BIG */
	struct {
		size_t at; /* where the PkgLength goes: the offset just after the opcode */
		uint8_t kind;
	} open[AML_MAX_DEPTH];
	unsigned depth;
};

/* An empty encoder. */
void aml_init(struct aml *a);

/*
 * Check every scope is closed; returns 0 or the first error. On success
 * a->buf holds a->len bytes of AML (the caller frees it with aml_free).
 */
int aml_finish(struct aml *a) must_check;

void aml_free(struct aml *a);

/*
 * Encode the PkgLength of a scope whose body (what follows the PkgLength)
 * is @body bytes into @out. Returns the encoding's size (1 to 4 bytes), or
 * 0 when it exceeds the 28-bit limit. The encoded value counts itself.
 */
unsigned aml_pkglen(size_t body, uint8_t out[4]);

/* Raw bytes. */
void aml_bytes(struct aml *a, const void *p, size_t n);

/*
 * A NameString: an optional root prefix '\' or parent prefixes '^', then
 * NameSegs separated by '.'; a segment shorter than four characters is
 * padded with '_' ("_S5" is "_S5_"). Segments are [A-Z_][A-Z0-9_]*.
 */
void aml_name(struct aml *a, const char *path);

/* An integer in its smallest encoding: Zero, One, Byte, Word, DWord or QWord. */
void aml_integer(struct aml *a, uint64_t v);

/* A String (printable ASCII). */
void aml_string(struct aml *a, const char *s);

/* A compressed EISA id ("PNP0501") as a DWord, as ASL's EisaId() makes it. */
void aml_eisaid(struct aml *a, const char *id);

/* Name(path, ...): the data object must follow. */
void aml_name_decl(struct aml *a, const char *path);

/* Scope(path) { ... aml_end }, Device(path) { ... aml_end }. */
void aml_scope(struct aml *a, const char *path);
void aml_device(struct aml *a, const char *path);

/* Package(n) { n data objects ... aml_end }. */
void aml_package(struct aml *a, unsigned nelems);

/*
 * Buffer() { bytes ... aml_end }: the buffer's size is the bytes written
 * before aml_end. ResourceTemplate() is a Buffer of resource descriptors
 * ending with aml_res_end().
 */
void aml_buffer(struct aml *a);

/* Close the innermost scope. */
void aml_end(struct aml *a);

/* Resource descriptors (ACPI 6.x, 6.4). */
/* IO(Decode16, @base, @base, 1, @len). */
void aml_res_io(struct aml *a, uint16_t base, uint8_t len);
/* IRQNoFlags() {@irq}: edge, active high, exclusive; @irq < 16. */
void aml_res_irq(struct aml *a, unsigned irq);
/* Memory32Fixed(ReadWrite or ReadOnly, @base, @len). */
void aml_res_mem32(struct aml *a, int writable, uint32_t base, uint32_t len);
/* Interrupt(@flags: AML_IRQ_*) {@gsi}: the Extended Interrupt descriptor. */
void aml_res_interrupt(struct aml *a, unsigned flags, uint32_t gsi);
/* The End Tag (checksum 0: "the template is valid", as iasl writes it). */
void aml_res_end(struct aml *a);

#endif
