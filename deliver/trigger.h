/* trigger: the spool's FIFO that tern-queue pokes after each commit.
 *
 * Promises: trigger_open() opens SPOOL's trigger read-write and
 * non-blocking (a writer held here, so it never reports EOF), and refuses
 * anything that is not a FIFO (-1, ENODEV, said on stderr);
 * trigger_keep() makes the FIFO anew, and swaps *FD for it, when the one
 * at its name is not the one held open; trigger_drain() empties it. */
#ifndef TERN_TRIGGER_H
#define TERN_TRIGGER_H

int trigger_open(const char *spool);
void trigger_keep(const char *spool, int *fd);
void trigger_drain(int fd);

#endif
