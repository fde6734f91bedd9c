/* What the fuzz targets share (tests/fuzz, built with -Dfuzz=enabled): the fuzzer's bytes as a
 * file the readers can open by path (in /dev/shm, memory, when there is one), a scratch
 * directory for what a reader writes, and HDF5 kept quiet. */
#ifndef NS_FUZZ_COMMON_H
#define NS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Input file `slot` (0..3) now holds exactly data[0..size); returns its path. Aborts if it
 * cannot be written: the fuzz run would be meaningless without it. */
const char *fuzz_file(int slot, const uint8_t *data, size_t size);

/* A private, empty scratch directory (made once, in /dev/shm, else $TMPDIR or /tmp) for what
 * the readers write; fuzz_scratch_clean empties it again. */
const char *fuzz_scratch(void);
void fuzz_scratch_clean(void);

/* Silences HDF5's error stack printing (a hostile file makes it print pages per input). */
void fuzz_quiet_hdf5(void);

/* Little-endian integer of up to 4 bytes taken from the front of *data (0 past the end). */
uint32_t fuzz_take(const uint8_t **data, size_t *size, int bytes);

#endif
