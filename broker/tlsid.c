#include "tlsid.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/sha256.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <nng/supplemental/tls/engine.h>

struct tlsid {
	struct tlsid_spec spec;
	char *peer_name, *fingerprint;
	mbedtls_x509_crt ca, crt;
	mbedtls_pk_context key;
	nng_tls_config *cfg;
	pthread_mutex_t lock; /* subject */
	char subject[256];
};

struct nng_tls_engine_config {
	mbedtls_ssl_config conf;
	struct tlsid *t; /* NULL: a configuration nng made for itself, which accepts nobody */
};

struct nng_tls_engine_conn {
	void *tls; /* nng's, for nng_tls_engine_send and _recv */
	mbedtls_ssl_context ctx;
	struct tlsid *t;
	bool accepted;
};

/* The tlsid whose configuration nng_tls_config_alloc is making on this
 * thread: the engine interface passes nothing of ours to config_init. */
static _Thread_local struct tlsid *pending;

/* One random generator for every handshake (mbed TLS's is not thread-safe). */
static pthread_mutex_t rng_lock = PTHREAD_MUTEX_INITIALIZER;
static mbedtls_entropy_context entropy;
static mbedtls_ctr_drbg_context drbg;

static int rng(void *arg, unsigned char *buf, size_t len)
{
	int r;

	pthread_mutex_lock(&rng_lock);
	r = mbedtls_ctr_drbg_random(&drbg, buf, len);
	pthread_mutex_unlock(&rng_lock);
	return r;
}

/* ---- the identity check ---- */

static bool name_is(const mbedtls_x509_buf *b, const char *name)
{
	return b->len == strlen(name) && !memcmp(b->p, name, b->len);
}

static bool carries_name(const mbedtls_x509_crt *c, const char *name)
{
	for (const mbedtls_x509_name *n = &c->subject; n; n = n->next)
		if (!MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) && name_is(&n->val, name))
			return true;
	for (const mbedtls_x509_sequence *s = &c->subject_alt_names; s; s = s->next)
		if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME) && name_is(&s->buf, name))
			return true;
	return false;
}

static void fingerprint_of(const mbedtls_x509_crt *c, char hex[65])
{
	unsigned char sum[32];

	mbedtls_sha256_ret(c->raw.p, c->raw.len, sum, 0);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", sum[i]);
}

/* NULL if the peer is the device, else why not. */
static const char *check_peer(const struct tlsid *t, const mbedtls_x509_crt *peer, uint32_t flags)
{
	char hex[65];

	if (!peer)
		return "it presented no certificate";
	/* Pinned: that certificate, whoever signed it. */
	if (t->fingerprint)
		flags &= ~(uint32_t)MBEDTLS_X509_BADCERT_NOT_TRUSTED;
	if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
		return "its certificate has expired";
	if (flags & MBEDTLS_X509_BADCERT_FUTURE)
		return "its certificate is not valid yet";
	if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
		return "its certificate is not signed by the configured CA";
	if (flags)
		return "its certificate does not verify";
	if (t->peer_name && !carries_name(peer, t->peer_name))
		return "its certificate does not carry the expected name";
	if (t->fingerprint) {
		fingerprint_of(peer, hex);
		if (strcmp(hex, t->fingerprint))
			return "its certificate's fingerprint is not the pinned one";
	}
	return NULL;
}

static int decide(nng_tls_engine_conn *ec)
{
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&ec->ctx);
	const char *why = ec->t ? check_peer(ec->t, peer, mbedtls_ssl_get_verify_result(&ec->ctx)) : "no identity to check";
	char subject[200] = "", msg[320];

	if (peer && mbedtls_x509_dn_gets(subject, sizeof(subject), &peer->subject) < 0)
		subject[0] = '\0';
	if (why) {
		if (ec->t) {
			snprintf(msg, sizeof(msg), "refused a TLS connection (certificate \"%s\"): %s", subject, why);
			ec->t->spec.refused(ec->t->spec.opaque, msg);
		}
		return NNG_EPEERAUTH;
	}
	pthread_mutex_lock(&ec->t->lock);
	snprintf(ec->t->subject, sizeof(ec->t->subject), "%s", subject);
	pthread_mutex_unlock(&ec->t->lock);
	ec->accepted = true;
	return 0;
}

/* ---- the engine: a connection ---- */

static int bio_send(void *tls, const unsigned char *buf, size_t len)
{
	size_t n = len;
	int r = nng_tls_engine_send(tls, buf, &n);

	if (r == NNG_EAGAIN)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	return r ? MBEDTLS_ERR_NET_SEND_FAILED : (int)n;
}

static int bio_recv(void *tls, unsigned char *buf, size_t len)
{
	size_t n = len;
	int r = nng_tls_engine_recv(tls, buf, &n);

	if (r == NNG_EAGAIN)
		return MBEDTLS_ERR_SSL_WANT_READ;
	return r ? MBEDTLS_ERR_NET_RECV_FAILED : (int)n;
}

static int conn_init(nng_tls_engine_conn *ec, void *tls, nng_tls_engine_config *cfg)
{
	ec->tls = tls;
	ec->t = cfg->t;
	mbedtls_ssl_init(&ec->ctx);
	mbedtls_ssl_set_bio(&ec->ctx, tls, bio_send, bio_recv, NULL);
	return mbedtls_ssl_setup(&ec->ctx, &cfg->conf) ? NNG_ENOMEM : 0;
}

static void conn_fini(nng_tls_engine_conn *ec)
{
	mbedtls_ssl_free(&ec->ctx);
}

static void conn_close(nng_tls_engine_conn *ec)
{
	mbedtls_ssl_close_notify(&ec->ctx);
}

static int io_result(int r)
{
	if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
		return NNG_EAGAIN;
	if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_SSL_CONN_EOF)
		return NNG_ECLOSED;
	return NNG_ECRYPTO;
}

static int conn_recv(nng_tls_engine_conn *ec, uint8_t *buf, size_t *len)
{
	int r = mbedtls_ssl_read(&ec->ctx, buf, *len);

	if (r < 0)
		return io_result(r);
	*len = (size_t)r;
	return 0;
}

static int conn_send(nng_tls_engine_conn *ec, const uint8_t *buf, size_t *len)
{
	int r = mbedtls_ssl_write(&ec->ctx, buf, *len);

	if (r < 0)
		return io_result(r);
	*len = (size_t)r;
	return 0;
}

static int conn_handshake(nng_tls_engine_conn *ec)
{
	int r = mbedtls_ssl_handshake(&ec->ctx);

	if (r == 0)
		return decide(ec);
	if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
		return NNG_EAGAIN;
	if (ec->t && r != MBEDTLS_ERR_SSL_CONN_EOF && r != MBEDTLS_ERR_NET_RECV_FAILED) {
		char err[100], msg[160];

		mbedtls_strerror(r, err, sizeof(err));
		snprintf(msg, sizeof(msg), "refused a connection: its TLS handshake failed: %s", err);
		ec->t->spec.refused(ec->t->spec.opaque, msg);
	}
	return NNG_EPEERAUTH;
}

static bool conn_verified(nng_tls_engine_conn *ec)
{
	return ec->accepted;
}

/* ---- the engine: a configuration ---- */

static int config_init(nng_tls_engine_config *cfg, nng_tls_mode mode)
{
	struct tlsid *t = pending;

	cfg->t = t;
	mbedtls_ssl_config_init(&cfg->conf);
	if (mode != NNG_TLS_MODE_SERVER ||
	    mbedtls_ssl_config_defaults(&cfg->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
					MBEDTLS_SSL_PRESET_DEFAULT))
		goto err;
	/* Optional, so that the handshake completes and decide() says why a
	 * peer is refused; it refuses one without a certificate. */
	mbedtls_ssl_conf_authmode(&cfg->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
	mbedtls_ssl_conf_min_version(&cfg->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_rng(&cfg->conf, rng, NULL);
	if (t) {
		mbedtls_ssl_conf_ca_chain(&cfg->conf, &t->ca, NULL);
		if (mbedtls_ssl_conf_own_cert(&cfg->conf, &t->crt, &t->key))
			goto err;
	}
	return 0;
err:
	mbedtls_ssl_config_free(&cfg->conf);
	return NNG_ENOTSUP;
}

static void config_fini(nng_tls_engine_config *cfg)
{
	mbedtls_ssl_config_free(&cfg->conf);
}

/* Everything comes from the tlsid: nng's setters are refused, but for
 * the auth mode nng itself sets on every listener's configuration, which
 * changes nothing here: decide() checks every peer. */
static int config_auth(nng_tls_engine_config *cfg, nng_tls_auth_mode mode)
{
	return 0;
}

static int config_ca_chain(nng_tls_engine_config *cfg, const char *certs, const char *crl)
{
	return NNG_ENOTSUP;
}

static int config_own_cert(nng_tls_engine_config *cfg, const char *cert, const char *key, const char *pass)
{
	return NNG_ENOTSUP;
}

static int config_server(nng_tls_engine_config *cfg, const char *name)
{
	return NNG_ENOTSUP;
}

static int config_version(nng_tls_engine_config *cfg, nng_tls_version min, nng_tls_version max)
{
	return NNG_ENOTSUP;
}

/* Not const: nng_tls_engine points at them so. */
static nng_tls_engine_config_ops config_ops = {
	.size = sizeof(nng_tls_engine_config),
	.init = config_init,
	.fini = config_fini,
	.server = config_server,
	.auth = config_auth,
	.ca_chain = config_ca_chain,
	.own_cert = config_own_cert,
	.version = config_version,
};

static nng_tls_engine_conn_ops conn_ops = {
	.size = sizeof(nng_tls_engine_conn),
	.init = conn_init,
	.fini = conn_fini,
	.close = conn_close,
	.handshake = conn_handshake,
	.recv = conn_recv,
	.send = conn_send,
	.verified = conn_verified,
};

static const nng_tls_engine engine = {
	.version = NNG_TLS_ENGINE_VERSION,
	.config_ops = &config_ops,
	.conn_ops = &conn_ops,
	.name = "ioreq-tlsid",
	.description = "mbed TLS, peers checked by the broker's tlsid",
	.fips_mode = false,
};

static int registered;

/* After nng's own start, which registers nng's engine (any call that
 * starts nng does: allocating a configuration). */
static void register_engine(void)
{
	static const unsigned char pers[] = "ioreq-tlsid";
	nng_tls_config *c;

	mbedtls_entropy_init(&entropy);
	mbedtls_ctr_drbg_init(&drbg);
	if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, pers, sizeof(pers) - 1)) {
		registered = -EIO;
		return;
	}
	if (nng_tls_config_alloc(&c, NNG_TLS_MODE_SERVER) == 0)
		nng_tls_config_free(c);
	registered = nng_tls_engine_register(&engine) ? -ENOTSUP : 1;
}

/* ---- a listener's identity ---- */

int tlsid_new(const struct tlsid_spec *spec, struct tlsid **ret, const char **ret_why)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct tlsid *t;
	int r;

	pthread_once(&once, register_engine);
	*ret_why = "TLS is not available";
	if (registered < 0)
		return registered;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->spec = *spec;
	pthread_mutex_init(&t->lock, NULL);
	mbedtls_x509_crt_init(&t->ca);
	mbedtls_x509_crt_init(&t->crt);
	mbedtls_pk_init(&t->key);
	r = -ENOMEM;
	if ((spec->peer_name && !(t->peer_name = strdup(spec->peer_name))) ||
	    (spec->fingerprint && !(t->fingerprint = strdup(spec->fingerprint))))
		goto err;
	r = -EINVAL;
	*ret_why = "cannot read its CA file (PEM)";
	if (spec->ca && mbedtls_x509_crt_parse_file(&t->ca, spec->ca) != 0)
		goto err;
	*ret_why = "cannot read its certificate file (PEM)";
	if (mbedtls_x509_crt_parse_file(&t->crt, spec->certificate) != 0)
		goto err;
	*ret_why = "cannot read its key file (PEM, unencrypted)";
	if (mbedtls_pk_parse_keyfile(&t->key, spec->key, NULL) != 0)
		goto err;
	*ret_why = "cannot make a TLS configuration";
	pending = t;
	r = nng_tls_config_alloc(&t->cfg, NNG_TLS_MODE_SERVER);
	pending = NULL;
	if (r) {
		t->cfg = NULL;
		r = -EINVAL;
		goto err;
	}
	*ret = t;
	return 0;
err:
	tlsid_free(t);
	return r;
}

struct tlsid *tlsid_free(struct tlsid *t)
{
	if (!t)
		return NULL;
	if (t->cfg)
		nng_tls_config_free(t->cfg);
	mbedtls_x509_crt_free(&t->ca);
	mbedtls_x509_crt_free(&t->crt);
	mbedtls_pk_free(&t->key);
	free(t->peer_name);
	free(t->fingerprint);
	pthread_mutex_destroy(&t->lock);
	free(t);
	return NULL;
}

nng_tls_config *tlsid_config(const struct tlsid *t)
{
	return t->cfg;
}

void tlsid_subject(struct tlsid *t, char *buf, size_t len)
{
	pthread_mutex_lock(&t->lock);
	snprintf(buf, len, "%s", t->subject);
	pthread_mutex_unlock(&t->lock);
}
