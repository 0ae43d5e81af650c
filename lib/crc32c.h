/* crc32c: CRC-32C (Castagnoli, polynomial 0x1EDC6F41 reflected as
 * 0x82F63B78), the checksum of iSCSI, ext4's metadata and SCTP.
 *
 * Promises: crc32c_update(0, "123456789", 9) == 0xE3069283 (the standard
 * check value), and feeding the same octets in any number of pieces gives
 * the same result as feeding them at once:
 *     crc = crc32c_update(crc32c_update(0, a, alen), b, blen)
 * On x86-64 it uses the SSE4.2 crc32 instruction when the CPU has it
 * (asked at run time), else a table; both give the same value.
 *
 * Why not a library: the one in Debian with a CRC-32C is ISA-L (libisal2,
 * crc32_iscsi), 360 KiB of erasure-coding and compression code built for
 * amd64 alone, that every program reading the spool would then load;
 * zlib's crc32() is the other polynomial (IEEE 802.3), and the kernel's
 * crc32c is reachable only through an AF_ALG socket per use. */
#ifndef TERN_CRC32C_H
#define TERN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of the octets so far (0 before the first) followed by the
 * LEN octets at DATA. */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);
/* The same, always with the table, whatever the CPU (for the tests). */
uint32_t crc32c_update_portable(uint32_t crc, const void *data, size_t len);

#endif
