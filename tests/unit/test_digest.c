/* test_digest.c: SHA-256 of an image file and its per-user cache: known
 * digests, a file larger than the read buffer, the cache hit, entries that
 * must be ignored (corrupt, foreign, writable by others), and a changed file
 * whose size and mtime were restored (as `touch -d` does). */
#include "husk_config.h"
#include "husk.h"
#include "unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char base[PATH_MAX], cache[PATH_MAX + 64];

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		perror(path);
		exit(1);
	}
	close(fd);
}

static int digest_of(const char *path, char out[65], struct husk_err *err)
{
	int fd = open(path, O_RDONLY), r;

	if (fd < 0) {
		perror(path);
		exit(1);
	}
	memset(err, 0, sizeof(*err));
	r = husk_image_digest(fd, path, out, err);
	close(fd);
	return r;
}

/* The digest computed here, in one call, independently of husk's loop. */
static void reference(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

/* The cache's entries (names not starting with '.'): how many, and the path
 * of the last one other than `except`. */
static int entries(char *last, size_t size, const char *except)
{
	DIR *d = opendir(cache);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			char p[PATH_MAX + 600];
			n++;
			snprintf(p, sizeof(p), "%s/%s", cache, e->d_name);
			if (!except || strcmp(p, except))
				snprintf(last, size, "%s", p);
		}
	closedir(d);
	return n;
}

static char *slurp(const char *path)
{
	static char buf[1024];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* Replace an entry's text (atomically, as a foreign writer could). */
static void put_entry(const char *path, const char *text, mode_t mode)
{
	char tmp[PATH_MAX + 80];

	snprintf(tmp, sizeof(tmp), "%s.x", path);
	write_file(tmp, text, strlen(text));
	chmod(tmp, mode);
	rename(tmp, path);
}

int main(void)
{
	static const char *const fake =
		"0000000000000000000000000000000000000000000000000000000000000000";
	char path[PATH_MAX + 32], other[PATH_MAX + 32], entry[PATH_MAX + 600], entry2[PATH_MAX + 600];
	char got[65], want[65], want_other[65], text[PATH_MAX + 64], saved[1024];
	struct husk_err err;
	struct timespec old_times[2] = { { 1500000000, 123456789 }, { 1500000000, 123456789 } };
	struct stat st;
	unsigned char *big;
	size_t big_len = (5 << 20) + 123;
	char *p;
	int fd;

	snprintf(base, sizeof(base), "/tmp/husk-test-digest.XXXXXX");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(cache, sizeof(cache), "%s/cache/husk/digests", base);
	snprintf(path, sizeof(path), "%s/image", base);
	snprintf(other, sizeof(other), "%s/other", base);
	snprintf(text, sizeof(text), "%s/cache", base);
	setenv("XDG_CACHE_HOME", text, 1);

	/* Known digests (FIPS 180-2 examples and the empty input). */
	write_file(path, "abc", 3);
	CHECK("sha256 of 'abc'", digest_of(path, got, &err) == 0 &&
		!strcmp(got, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	write_file(path, "", 0);
	CHECK("sha256 of an empty file", digest_of(path, got, &err) == 0 &&
		!strcmp(got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));

	/* Larger than the read buffer, not a multiple of it. */
	big = malloc(big_len);
	srand(42);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (unsigned char)(rand() >> 7);
	write_file(path, big, big_len);
	reference(big, big_len, want);
	CHECK("a 5 MiB file has the digest of its bytes", digest_of(path, got, &err) == 0 &&
		!strcmp(got, want));

	/* The fd's offset plays no part. */
	fd = open(path, O_RDONLY);
	lseek(fd, 1000, SEEK_SET);
	CHECK("the fd's offset does not matter", husk_image_digest(fd, path, got, &err) == 0 &&
		!strcmp(got, want));
	close(fd);
	fd = open(base, O_RDONLY | O_DIRECTORY);
	CHECK("a directory has no digest", husk_image_digest(fd, base, got, &err) == -1 &&
		strstr(err.msg, "not a regular file"));
	close(fd);
	CHECK("nothing cached for a file changed just now", entries(entry, sizeof(entry), NULL) == 0);

	/* The cache takes only files unchanged for 2 s (coarse timestamps). */
	memset(big, 'A', 4096);
	write_file(path, big, 4096);
	futimens(fd = open(path, O_RDONLY), old_times);
	close(fd);
	write_file(other, "other", 5);
	reference("other", 5, want_other);
	reference(big, 4096, want);
	sleep(2);
	usleep(300 * 1000);
	CHECK("digest of the file", digest_of(path, got, &err) == 0 && !strcmp(got, want));
	CHECK("one cache entry", entries(entry, sizeof(entry), NULL) == 1);
	CHECK("the entry is private (0600)", stat(entry, &st) == 0 &&
		(st.st_mode & 07777) == 0600 && st.st_uid == geteuid());
	snprintf(saved, sizeof(saved), "%s", slurp(entry));
	CHECK("the entry holds the digest", strstr(saved, want) != NULL);
	stat(cache, &st);
	CHECK("the cache directory is private (0700)", (st.st_mode & 07777) == 0700);

	/* A hit returns what the entry says: shown with a planted digest. */
	snprintf(text, sizeof(text), "%s", saved);
	p = strstr(text, want);
	memcpy(p, fake, 64);
	put_entry(entry, text, 0600);
	CHECK("a cache hit returns the cached digest", digest_of(path, got, &err) == 0 &&
		!strcmp(got, fake));

	/* ... but not from an entry others could have written. */
	put_entry(entry, text, 0620);
	CHECK("an entry writable by the group is ignored", digest_of(path, got, &err) == 0 &&
		!strcmp(got, want));
	CHECK("... and rewritten", !strcmp(slurp(entry), saved) && stat(entry, &st) == 0 &&
		(st.st_mode & 07777) == 0600);

	/* Corrupt entries are ignored and rewritten. */
	put_entry(entry, "garbage\n", 0600);
	CHECK("a corrupt entry is ignored", digest_of(path, got, &err) == 0 && !strcmp(got, want));
	CHECK("... and rewritten", !strcmp(slurp(entry), saved));
	snprintf(text, sizeof(text), "%.*s", (int)strlen(saved) - 10, saved);
	put_entry(entry, text, 0600);
	CHECK("a truncated entry is ignored", digest_of(path, got, &err) == 0 &&
		!strcmp(got, want));
	snprintf(text, sizeof(text), "%s", saved);
	p = strstr(text, want);
	memcpy(p, "ABCDEF", 6);
	put_entry(entry, text, 0600);
	CHECK("an entry with uppercase hex is ignored", digest_of(path, got, &err) == 0 &&
		!strcmp(got, want));

	/* An entry of another file, under this file's name, is foreign. */
	CHECK("digest of a second file", digest_of(other, got, &err) == 0 &&
		!strcmp(got, want_other));
	CHECK("... cached in its own entry", entries(entry2, sizeof(entry2), entry) == 2 &&
		strstr(slurp(entry2), want_other));
	put_entry(entry, slurp(entry2), 0600);
	CHECK("another file's entry under this file's name is ignored",
		digest_of(path, got, &err) == 0 && !strcmp(got, want));
	CHECK("... and rewritten", !strcmp(slurp(entry), saved));

	/* The file changes; size and mtime are put back as `touch -d` does. */
	memset(big, 'B', 4096);
	fd = open(path, O_WRONLY);
	if (pwrite(fd, big, 4096, 0) != 4096)
		perror("pwrite");
	futimens(fd, old_times);
	close(fd);
	stat(path, &st);
	CHECK("(the test restored size and mtime)", st.st_size == 4096 &&
		st.st_mtim.tv_sec == old_times[1].tv_sec &&
		st.st_mtim.tv_nsec == old_times[1].tv_nsec);
	reference(big, 4096, want);
	CHECK("a changed file with size and mtime restored is hashed again",
		digest_of(path, got, &err) == 0 && !strcmp(got, want));

	/* No usable cache directory: still correct. */
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/proc/no-such-home", 1);
	CHECK("without a usable HOME the digest is still right", digest_of(path, got, &err) == 0 &&
		!strcmp(got, want));
	unsetenv("HOME");
	CHECK("without HOME at all too", digest_of(path, got, &err) == 0 && !strcmp(got, want));

	snprintf(text, sizeof(text), "rm -rf '%s'", base);
	if (system(text) != 0)
		printf("# could not remove %s\n", base);
	free(big);
	return unit_done();
}
