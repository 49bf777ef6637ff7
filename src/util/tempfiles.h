/*
 * The temporary files bnfold makes beside its outputs (the model's, the data
 * file's), tracked so that a run ended by a signal (SIGINT, SIGTERM, SIGHUP)
 * removes them instead of leaving them in the user's folder.
 */
#ifndef BNF_TEMPFILES_H
#define BNF_TEMPFILES_H

/* Track path (copied); returns its slot, or -1 when all slots are taken
 * (the file is then simply not removed on a signal). Main thread only. */
int bnf_temp_track(const char *path);

/* Stop tracking a slot (the file was renamed into place or removed); a
 * negative slot is ignored. */
void bnf_temp_untrack(int slot);

/* Remove every tracked file: async-signal-safe, for signal handlers. */
void bnf_temp_remove_all(void);

#endif
