/* admin_internal.h: the admin listener (/metrics, /healthz). */
#ifndef CONSENTGATE_ADMIN_INTERNAL_H
#define CONSENTGATE_ADMIN_INTERNAL_H

struct admin;
struct server;
struct config;
struct cg_errors;

/*
 * Serve /metrics and /healthz of server s on cfg->admin_addr, on a thread
 * of its own. Call after server_new (which set the threads' signal mask)
 * and server_listen (the workers exist). NULL with the reason in errs
 * ("--admin: cannot listen on HOST:PORT: address already in use").
 */
struct admin *admin_start(struct server *s, const struct config *cfg,
                          struct cg_errors *errs);
/* The port bound (after --admin HOST:0). */
int admin_port(const struct admin *a);
/* Stop the thread and close the listener. NULL does nothing. */
void admin_stop(struct admin *a);

#endif
