/* elfinfo.c: what host-library injection needs to know about ELF objects
 * and linker caches, read from memory with <elf.h>: an object's soname,
 * DT_NEEDED list, run path and symbol versions (the GLIBC_x.y it needs and,
 * for a libc, defines), and the soname -> path list of an ld.so.cache.
 * Only the dynamic segment is used (section headers may be stripped); every
 * offset read from the file is checked against its length. */
#include "husk_config.h"
#include "inject.h"
#include "util.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

uint16_t husk_elf_native_machine(void)
{
#if defined(__x86_64__)
	return EM_X86_64;
#elif defined(__aarch64__)
	return EM_AARCH64;
#elif defined(__powerpc64__)
	return EM_PPC64;
#elif defined(__riscv)
	return EM_RISCV;
#else
	return EM_NONE;
#endif
}

static const char *const glibc_sonames[] = {
	"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1",
	"libresolv.so.2", "libutil.so.1", "libanl.so.1", "libnsl.so.1", "libmvec.so.1",
	"libBrokenLocale.so.1", "libthread_db.so.1", "libc_malloc_debug.so.0",
	"libnss_files.so.2", "libnss_dns.so.2", "libcrypt.so.1" /* glibc < 2.38 builds */, NULL,
};

bool husk_soname_is_glibc(const char *soname)
{
	/* ld-linux-x86-64.so.2, ld-linux-aarch64.so.1, ld64.so.2, ld-linux.so.2 */
	if (!strncmp(soname, "ld-linux", 8) || !strncmp(soname, "ld64.so.", 8))
		return true;
	for (int i = 0; glibc_sonames[i]; i++)
		if (!strcmp(soname, glibc_sonames[i]))
			return true;
	return false;
}

int husk_version_cmp(const char *a, const char *b)
{
	if (!*a || !*b)
		return (*a != '\0') - (*b != '\0');
	for (;;) {
		char *ea, *eb;
		unsigned long x = strtoul(a, &ea, 10), y = strtoul(b, &eb, 10);
		if (x != y)
			return x < y ? -1 : 1;
		a = ea;
		b = eb;
		if (*a != '.' && *b != '.')
			return 0;
		if (*a != '.')
			return -1;
		if (*b != '.')
			return 1;
		a++;
		b++;
	}
}

/* ---- ELF -------------------------------------------------------------------- */

struct elf_view {
	const unsigned char *b;
	size_t len;
	const Elf64_Phdr *ph;
	unsigned phnum;
	size_t strtab, strsz;    /* file offset and size of the dynamic string table */
};

static bool in_file(const struct elf_view *v, uint64_t off, uint64_t n)
{
	return off <= v->len && n <= v->len - off;
}

/* A virtual address of a loaded segment, as a file offset ((size_t)-1: none). */
static size_t vaddr_off(const struct elf_view *v, uint64_t addr)
{
	for (unsigned i = 0; i < v->phnum; i++) {
		const Elf64_Phdr *p = &v->ph[i];
		if (p->p_type == PT_LOAD && addr >= p->p_vaddr && addr - p->p_vaddr < p->p_filesz)
			return (size_t)(p->p_offset + (addr - p->p_vaddr));
	}
	return (size_t)-1;
}

static const char *str_at(const struct elf_view *v, uint64_t i)
{
	if (i >= v->strsz || !in_file(v, v->strtab, v->strsz) ||
	    !memchr(v->b + v->strtab + i, '\0', v->strsz - i))
		return NULL;
	return (const char *)v->b + v->strtab + i;
}

/* "GLIBC_2.34" -> keep the higher of it and *best. */
static void note_glibc(char best[32], const char *name)
{
	if (strncmp(name, "GLIBC_", 6) || name[6] < '0' || name[6] > '9' || strlen(name + 6) >= 32)
		return;
	if (husk_version_cmp(name + 6, best) > 0)
		strcpy(best, name + 6);
}

static int parse_verneed(const struct elf_view *v, size_t off, uint64_t num, struct husk_elf *e)
{
	size_t n = 0;

	for (uint64_t i = 0; i < num && i < 4096; i++) {
		const Elf64_Verneed *vn;
		size_t aux;
		if (!in_file(v, off, sizeof(*vn)))
			return -1;
		vn = (const Elf64_Verneed *)(v->b + off);
		aux = off + vn->vn_aux;
		for (unsigned j = 0; j < vn->vn_cnt && j < 4096; j++) {
			const Elf64_Vernaux *va;
			const char *file = str_at(v, vn->vn_file), *name;
			if (!in_file(v, aux, sizeof(*va)))
				return -1;
			va = (const Elf64_Vernaux *)(v->b + aux);
			if (!file || !(name = str_at(v, va->vna_name)))
				return -1;
			note_glibc(e->glibc_needed, name);
			{
				char *both = malloc(strlen(file) + strlen(name) + 2);
				int r;
				if (!both)
					return -1;
				strcpy(stpcpy(stpcpy(both, file), " "), name);
				r = husk_strv_push(&e->vneed, &n, both);
				free(both);
				if (r < 0)
					return -1;
			}
			if (!va->vna_next)
				break;
			aux += va->vna_next;
		}
		if (!vn->vn_next)
			break;
		off += vn->vn_next;
	}
	return 0;
}

static int parse_verdef(const struct elf_view *v, size_t off, uint64_t num, struct husk_elf *e)
{
	size_t n = 0;

	for (uint64_t i = 0; i < num && i < 4096; i++) {
		const Elf64_Verdef *vd;
		const Elf64_Verdaux *va;
		const char *name;
		if (!in_file(v, off, sizeof(*vd)))
			return -1;
		vd = (const Elf64_Verdef *)(v->b + off);
		/* The first aux entry is the version's own name (the base entry,
		 * VER_FLG_BASE, names the file itself). */
		if (!(vd->vd_flags & VER_FLG_BASE) && vd->vd_cnt) {
			if (!in_file(v, off + vd->vd_aux, sizeof(*va)))
				return -1;
			va = (const Elf64_Verdaux *)(v->b + off + vd->vd_aux);
			if (!(name = str_at(v, va->vda_name)))
				return -1;
			note_glibc(e->glibc_defined, name);
			if (husk_strv_push(&e->vdef, &n, name) < 0)
				return -1;
		}
		if (!vd->vd_next)
			break;
		off += vd->vd_next;
	}
	return 0;
}

static int split_runpath(const char *s, struct husk_elf *e, size_t *n)
{
	char *copy = strdup(s), *save = NULL;
	int r = 0;

	if (!copy)
		return -1;
	for (char *d = strtok_r(copy, ":", &save); d && r == 0; d = strtok_r(NULL, ":", &save))
		r = husk_strv_push(&e->runpath, n, d);
	free(copy);
	return r;
}

int husk_elf_parse(const void *buf, size_t len, struct husk_elf *e)
{
	struct elf_view v = { .b = buf, .len = len };
	const Elf64_Ehdr *eh = buf;
	const Elf64_Dyn *dyn = NULL;
	size_t ndyn = 0, n_needed = 0, n_run = 0;
	uint64_t verneed = 0, verneednum = 0, verdef = 0, verdefnum = 0, soname = (uint64_t)-1;
	uint64_t strtab = 0, runpath = (uint64_t)-1, rpath = (uint64_t)-1;
	static const unsigned char ours = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ?
		ELFDATA2LSB : ELFDATA2MSB;

	memset(e, 0, sizeof(*e));
	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ours ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    !in_file(&v, eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr)) ||
	    eh->e_phoff % 8)
		goto bad;
	e->machine = eh->e_machine;
	v.ph = (const Elf64_Phdr *)(v.b + eh->e_phoff);
	v.phnum = eh->e_phnum;
	for (unsigned i = 0; i < v.phnum; i++)
		if (v.ph[i].p_type == PT_DYNAMIC) {
			if (!in_file(&v, v.ph[i].p_offset, v.ph[i].p_filesz) || v.ph[i].p_offset % 8)
				goto bad;
			dyn = (const Elf64_Dyn *)(v.b + v.ph[i].p_offset);
			ndyn = v.ph[i].p_filesz / sizeof(*dyn);
		}
	if (!dyn)
		goto done;   /* a static object: needs nothing */
	for (size_t i = 0; i < ndyn && dyn[i].d_tag != DT_NULL; i++) {
		switch (dyn[i].d_tag) {
		case DT_STRTAB: strtab = dyn[i].d_un.d_ptr; break;
		case DT_STRSZ: v.strsz = dyn[i].d_un.d_val; break;
		case DT_SONAME: soname = dyn[i].d_un.d_val; break;
		case DT_RUNPATH: runpath = dyn[i].d_un.d_val; break;
		case DT_RPATH: rpath = dyn[i].d_un.d_val; break;
		case DT_VERNEED: verneed = dyn[i].d_un.d_ptr; break;
		case DT_VERNEEDNUM: verneednum = dyn[i].d_un.d_val; break;
		case DT_VERDEF: verdef = dyn[i].d_un.d_ptr; break;
		case DT_VERDEFNUM: verdefnum = dyn[i].d_un.d_val; break;
		}
	}
	if ((v.strtab = vaddr_off(&v, strtab)) == (size_t)-1 || !in_file(&v, v.strtab, v.strsz))
		goto bad;
	for (size_t i = 0; i < ndyn && dyn[i].d_tag != DT_NULL; i++) {
		const char *s;
		if (dyn[i].d_tag != DT_NEEDED)
			continue;
		if (!(s = str_at(&v, dyn[i].d_un.d_val)) || husk_strv_push(&e->needed, &n_needed, s) < 0)
			goto bad;
	}
	if (soname != (uint64_t)-1) {
		const char *s = str_at(&v, soname);
		if (!s || !(e->soname = strdup(s)))
			goto bad;
	}
	/* DT_RUNPATH wins over DT_RPATH when both are there, as in ld.so. */
	if (runpath != (uint64_t)-1 || rpath != (uint64_t)-1) {
		const char *s = str_at(&v, runpath != (uint64_t)-1 ? runpath : rpath);
		if (!s || split_runpath(s, e, &n_run) < 0)
			goto bad;
	}
	if (verneednum && (parse_verneed(&v, vaddr_off(&v, verneed), verneednum, e) < 0))
		goto bad;
	if (verdefnum && (parse_verdef(&v, vaddr_off(&v, verdef), verdefnum, e) < 0))
		goto bad;
done:
	if (!e->needed && !(e->needed = calloc(1, sizeof(char *))))
		goto bad;
	return 0;
bad:
	husk_elf_free(e);
	errno = EINVAL;
	return -1;
}

/* Read [off, off+len) of the file into the same place of buf (size bytes),
 * clamped to the file. */
static int fill(husk_elf_read_fn rd, void *data, unsigned char *buf, size_t size, uint64_t off,
	uint64_t len)
{
	if (off >= size)
		return 0;
	if (len > size - off)
		len = size - off;
	return rd(data, off, (size_t)len, buf + off);
}

int husk_elf_parse_sparse(husk_elf_read_fn rd, void *data, size_t size, struct husk_elf *e)
{
	unsigned char *buf;
	const Elf64_Ehdr *eh;
	const Elf64_Phdr *ph;
	struct elf_view v;
	int r = -1;

	memset(e, 0, sizeof(*e));
	if (size < sizeof(Elf64_Ehdr))
		return errno = EINVAL, -1;
	/* Untouched pages of an anonymous mapping cost nothing. */
	if ((buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) ==
	    MAP_FAILED)
		return -1;
	eh = (const Elf64_Ehdr *)buf;
	if (fill(rd, data, buf, size, 0, 4096) < 0)
		goto out;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    fill(rd, data, buf, size, eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(*ph)) < 0 ||
	    eh->e_phoff > size || (uint64_t)eh->e_phnum * sizeof(*ph) > size - eh->e_phoff) {
		errno = EINVAL;
		goto out;
	}
	v = (struct elf_view){ .b = buf, .len = size, .ph = (const Elf64_Phdr *)(buf + eh->e_phoff),
		.phnum = eh->e_phnum };
	for (unsigned i = 0; i < v.phnum; i++) {
		const Elf64_Dyn *dyn;
		size_t n;
		if (v.ph[i].p_type != PT_DYNAMIC)
			continue;
		if (!in_file(&v, v.ph[i].p_offset, v.ph[i].p_filesz) ||
		    fill(rd, data, buf, size, v.ph[i].p_offset, v.ph[i].p_filesz) < 0)
			break;
		dyn = (const Elf64_Dyn *)(buf + v.ph[i].p_offset);
		n = v.ph[i].p_filesz / sizeof(*dyn);
		uint64_t strsz = 0, strtab = 0, vd = 0, vdn = 0, vn = 0, vnn = 0;
		for (size_t k = 0; k < n && dyn[k].d_tag != DT_NULL; k++)
			switch (dyn[k].d_tag) {
			case DT_STRTAB: strtab = dyn[k].d_un.d_ptr; break;
			case DT_STRSZ: strsz = dyn[k].d_un.d_val; break;
			case DT_VERDEF: vd = dyn[k].d_un.d_ptr; break;
			case DT_VERDEFNUM: vdn = dyn[k].d_un.d_val; break;
			case DT_VERNEED: vn = dyn[k].d_un.d_ptr; break;
			case DT_VERNEEDNUM: vnn = dyn[k].d_un.d_val; break;
			}
		/* Version entries are small; their aux lists follow them. */
		if ((strtab && fill(rd, data, buf, size, vaddr_off(&v, strtab), strsz) < 0) ||
		    (vd && fill(rd, data, buf, size, vaddr_off(&v, vd), vdn * 64 + 4096) < 0) ||
		    (vn && fill(rd, data, buf, size, vaddr_off(&v, vn), vnn * 256 + 4096) < 0))
			goto out;
	}
	r = husk_elf_parse(buf, size, e);
out:
	munmap(buf, size);
	return r;
}

static void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

void husk_elf_free(struct husk_elf *e)
{
	free(e->soname);
	strv_free(e->needed);
	strv_free(e->runpath);
	strv_free(e->vneed);
	strv_free(e->vdef);
	memset(e, 0, sizeof(*e));
}

/* ---- ld.so.cache ------------------------------------------------------------
 * glibc's elf/dl-cache.h: since glibc 2.32 ldconfig writes only the new
 * format; older ones wrote the old format followed by the new one. String
 * offsets in the new format count from the start of its header. */

#define CACHE_OLD_MAGIC "ld.so-1.7.0"
#define CACHE_NEW_MAGIC "glibc-ld.so.cache1.1"
#define CACHE_FLAG_TYPE_MASK 0x00ff
#define CACHE_FLAG_ELF_LIBC6 0x0003

struct cache_new_hdr {
	char magic[20];          /* "glibc-ld.so.cache" "1.1" */
	uint32_t nlibs, len_strings;
	uint8_t flags, pad[3];
	uint32_t extension_offset, unused[3];
};
struct cache_new_entry {
	int32_t flags;
	uint32_t key, value, osversion;
	uint64_t hwcap;
};

static const char *cache_str(const unsigned char *base, size_t avail, uint32_t off)
{
	if (off >= avail || !memchr(base + off, '\0', avail - off))
		return NULL;
	return (const char *)base + off;
}

int husk_ldcache_parse(const void *buf, size_t len, struct husk_ldcache *c)
{
	const unsigned char *b = buf;
	const struct cache_new_hdr *h;
	size_t off = 0, avail;

	memset(c, 0, sizeof(*c));
	if (len >= sizeof(CACHE_OLD_MAGIC) - 1 + 4 &&
	    !memcmp(b, CACHE_OLD_MAGIC, sizeof(CACHE_OLD_MAGIC) - 1)) {
		uint32_t n;
		memcpy(&n, b + sizeof(CACHE_OLD_MAGIC) - 1, 4);
		/* old header (magic + nlibs, 16 bytes), 12-byte entries, then the
		 * new header aligned like its struct (8 bytes) */
		off = 16 + (size_t)n * 12;
		off = (off + 7) & ~(size_t)7;
	}
	if (off > len || len - off < sizeof(*h) ||
	    memcmp(b + off, CACHE_NEW_MAGIC, sizeof(CACHE_NEW_MAGIC) - 1))
		goto bad;
	h = (const struct cache_new_hdr *)(b + off);
	avail = len - off;
	if ((uint64_t)h->nlibs * sizeof(struct cache_new_entry) > avail - sizeof(*h))
		goto bad;
	if (!(c->v = calloc(h->nlibs + 1, sizeof(*c->v))))
		goto bad;
	for (uint32_t i = 0; i < h->nlibs; i++) {
		struct cache_new_entry en;
		const char *k, *p;
		memcpy(&en, b + off + sizeof(*h) + i * sizeof(en), sizeof(en));
		if ((en.flags & CACHE_FLAG_TYPE_MASK) != CACHE_FLAG_ELF_LIBC6 || en.hwcap)
			continue;
		if (!(k = cache_str(b + off, avail, en.key)) || !(p = cache_str(b + off, avail, en.value)))
			goto bad;
		if (!(c->v[c->n].soname = strdup(k)) || !(c->v[c->n].path = strdup(p))) {
			c->n++;
			goto bad;
		}
		c->n++;
	}
	return 0;
bad:
	husk_ldcache_free(c);
	errno = EINVAL;
	return -1;
}

void husk_ldcache_free(struct husk_ldcache *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].soname);
		free(c->v[i].path);
	}
	free(c->v);
	memset(c, 0, sizeof(*c));
}

const char *husk_ldcache_find(const struct husk_ldcache *c, const char *soname, size_t *pos)
{
	for (size_t i = pos ? *pos : 0; i < c->n; i++)
		if (!strcmp(c->v[i].soname, soname)) {
			if (pos)
				*pos = i + 1;
			return c->v[i].path;
		}
	return NULL;
}
