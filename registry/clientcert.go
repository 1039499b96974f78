package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/url"
	"sync/atomic"
	"syscall"
)

// The TLS alerts a server ends a handshake with when it wants a client certificate it did
// not get. TLS 1.3 has an alert for exactly this; TLS 1.2 servers send a generic one
// (OpenSSL and Go send handshake_failure, some others bad_certificate).
var (
	alertCertificateRequired = tls.AlertError(116).Error()
	alertHandshakeFailure    = tls.AlertError(40).Error()
	alertBadCertificate      = tls.AlertError(42).Error()
)

// h2NotEstablished is net/http's HTTP/2 error for a new connection that closed before its
// first request could be sent; it does not say why (its text is the same in
// golang.org/x/net/http2).
const h2NotEstablished = "http2: client conn could not be established"

// certProbeKey is the context key of a request's certProbe.
type certProbeKey struct{}

// certProbe records, for one logical request and its retries, that a server asked for a
// TLS client certificate and dls sent none. A TLS 1.2 handshake_failure alert means a
// missing client certificate only after such a request; without this record it is
// indistinguishable from a handshake that failed for any other reason.
type certProbe struct{ askedNone atomic.Bool }

// withCertProbe returns ctx carrying a new certProbe. net/http keeps the request
// context's values in the context of the handshake it dials for that request, which is
// where the probing GetClientCertificate finds it.
func withCertProbe(ctx context.Context) context.Context {
	return context.WithValue(ctx, certProbeKey{}, &certProbe{})
}

// withClientCertProbe returns tc (a new config if nil) choosing the client certificate
// itself, as crypto/tls would from tc.Certificates, so that it can record in the
// handshake's certProbe that the server asked and none of ours fitted. Servers that only
// request a certificate (optional client auth) still get an empty answer, as before.
func withClientCertProbe(tc *tls.Config) *tls.Config {
	if tc == nil {
		tc = &tls.Config{}
	}
	certs := tc.Certificates
	tc.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		for i := range certs {
			if cri.SupportsCertificate(&certs[i]) == nil {
				return &certs[i], nil
			}
		}
		if p, ok := cri.Context().Value(certProbeKey{}).(*certProbe); ok {
			p.askedNone.Store(true)
		}
		return &tls.Certificate{}, nil
	}
	return tc
}

// isClientCertMissing reports a request the server refused at the TLS layer for want of a
// client certificate dls did not send. No retry can fix it. It is the certificate_required
// alert; or, after the server asked for a certificate and got none (ctx carries the
// request's certProbe), a handshake_failure or bad_certificate alert (TLS 1.2), or the
// new connection closing under the request (TLS 1.3).
//
// A TLS 1.3 server judges the client's certificate after the client has finished its
// handshake and begun to send the request, so the client may meet the closed connection
// (a reset, a broken pipe, EOF, or HTTP/2's h2NotEstablished, which drops the cause)
// before it reads the alert. That case is inferred: a server with optional client
// authentication whose connection broke for another reason is taken for one that
// demands a certificate. That is rare, and the error still quotes the cause.
func isClientCertMissing(ctx context.Context, err error) bool {
	p, _ := ctx.Value(certProbeKey{}).(*certProbe)
	askedNone := p != nil && p.askedNone.Load()
	alert, ok := remoteAlert(err)
	switch {
	case ok && alert == alertCertificateRequired:
		return true
	case ok:
		return askedNone && (alert == alertHandshakeFailure || alert == alertBadCertificate)
	default:
		return askedNone && isConnClosed(err)
	}
}

// isConnClosed reports a connection the peer closed or reset under a request.
func isConnClosed(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		hasErrorText(err, h2NotEstablished)
}

// hasErrorText reports whether err or an error it wraps has exactly the text msg, for
// the errors of other packages that are not exported.
func hasErrorText(err error, msg string) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == msg {
			return true
		}
	}
	return false
}

// remoteAlert returns the text of the TLS alert the peer sent ("tls: handshake failure"),
// if err is one. crypto/tls reports a received alert as a net.OpError "remote error"
// around an unexported type whose text is that of the exported tls.AlertError.
func remoteAlert(err error) (string, bool) {
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err == nil {
		return "", false
	}
	return oe.Err.Error(), true
}

// TODO: a certificate dls sent and the server refused (bad_certificate, unknown_ca or
// certificate_expired after our certificate went out) is still retried and reported as
// ErrUnreachable; it wants its own hint, naming the cert_file that was refused.

// clientCertError is the error of a request refused for want of a client certificate:
// ErrUnauthorized, as the server refuses us for lack of credentials, with a message that
// names the host and the registries.yaml settings that supply one.
func clientCertError(err error) error {
	host := errHost(err)
	return kindErrorf(ErrUnauthorized, "present TLS client certificate: %s: %s asked for "+
		"one and none was sent (set configs.%q.tls.cert_file and key_file in "+
		"registries.yaml)", transportCause(err), host, host)
}

// errHost is the host[:port] of the request a transport error is about, as a configs key
// of registries.yaml is written, or "<host>" when err does not name it.
func errHost(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return hostOf(uerr.URL)
	}
	return "<host>"
}
