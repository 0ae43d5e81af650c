/* tern-queue runs set-uid: the sanitizers ignore ASAN_OPTIONS there, and
 * LeakSanitizer aborts in a set-id process, so a sanitizer build compiles
 * its options in (DESIGN.md, Tests). */
#ifdef TERN_SANITIZE
const char *__asan_default_options(void);

const char *__asan_default_options(void)
{
	return "detect_leaks=0:abort_on_error=0";
}
#else
typedef int tern_queue_sanitizer_unused;	/* ISO C wants something here */
#endif
