#!/usr/bin/env bash
# Makes certificates for a TLS test cluster with the openssl CLI (and keytool, for a Java
# style PKCS12 trust store):  scripts/make-test-certs.sh DIR [PASSWORD]
#
# In DIR (created; files overwritten):
#   ca.pem, ca.key            a test CA (10 years)
#   server.pem                server certificate (CN=localhost, SAN localhost/127.0.0.1/::1)
#                             followed by its unencrypted PKCS#8 key: ZooKeeper's PEM key store
#   server.crt, server.key    the same, apart (for clients that want them split)
#   server.p12                the server's key store as PKCS12 (password PASSWORD)
#   otherhost.pem             a server certificate + key for otherhost.invalid only (hostname
#                             verification tests: it does not name localhost or 127.0.0.1)
#   client.crt, client.key    a client certificate (CN=client,OU=test,O=ferrokeeper) signed by
#                             the CA; client.pem holds both, client.p12 is the PKCS12 form
#   client2.crt, client2.key  a second client (CN=client2,OU=test,O=ferrokeeper): another x509 id,
#                             for host client2.invalid only (not 127.0.0.1)
#   admin.crt, admin.key      a client whose subject needs RFC 2253 escaping and an emailAddress
#   expired.crt, expired.key  a client certificate of the same CA that expired in 2020
#   rogue-ca.pem, untrusted.crt, untrusted.key
#                             a second CA and a client certificate it signed (not trusted)
#   truststore.pem            the CA certificate (ZooKeeper's PEM trust store)
#   truststore.p12            the CA as a trusted entry of a PKCS12 store (made by keytool,
#                             password PASSWORD; skipped when keytool is missing)
# PASSWORD defaults to "testpass". Nothing here is fit for production.
set -euo pipefail

dir=${1:?usage: make-test-certs.sh DIR [PASSWORD]}
password=${2:-testpass}
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign NAME SUBJECT CA_CERT CA_KEY EXTENSIONS [START END]: NAME.key + NAME.crt signed by the CA.
sign() {
    local name=$1 subject=$2 ca_cert=$3 ca_key=$4 ext=$5 start=${6:-} end=${7:-}
    key "$name.key"
    openssl req -new -key "$name.key" -subj "$subject" -out "$name.csr"
    printf '%s\n' "$ext" > "$name.ext"
    if [ -n "$start" ]; then
        # `openssl ca` is the only 3.0 command that takes explicit validity dates.
        mkdir -p ca-db && : > ca-db/index.txt && echo 1000 > ca-db/serial
        cat > ca-db/ca.cnf <<EOF
[ca]
default_ca = test_ca
[test_ca]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
organizationalUnitName = optional
organizationName = optional
EOF
        openssl ca -batch -notext -config ca-db/ca.cnf -cert "$ca_cert" -keyfile "$ca_key" \
            -startdate "$start" -enddate "$end" -extfile "$name.ext" -in "$name.csr" -out "$name.crt" 2>/dev/null
        rm -rf ca-db
    else
        openssl x509 -req -in "$name.csr" -CA "$ca_cert" -CAkey "$ca_key" -CAcreateserial -days 3650 \
            -sha256 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
    fi
    rm -f "$name.csr" "$name.ext"
}

make_ca() {
    local name=$1 subject=$2
    key "$name.key"
    openssl req -x509 -new -key "$name.key" -subj "$subject" -days 3650 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$name.pem"
}

make_ca ca "/CN=ferrokeeper test CA"
make_ca rogue-ca "/CN=rogue CA"
server_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
client_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth,serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
sign server "/CN=localhost" ca.pem ca.key "$server_ext"
# A server certificate for another host only: clients checking hostnames refuse it on 127.0.0.1.
otherhost_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:otherhost.invalid"
sign otherhost "/CN=otherhost.invalid" ca.pem ca.key "$otherhost_ext"
sign client "/O=ferrokeeper/OU=test/CN=client" ca.pem ca.key "$client_ext"
# A second client (another x509 id) and an administrator whose subject exercises the RFC 2253
# rendering of the x509 id: escaped characters, a multi-valued-looking OU, an emailAddress
# (rendered by OID as #hex), padding spaces.
# client2 names another host only: the server does not check a client's hostname (as ZooKeeper).
client2_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
subjectAltName=DNS:client2.invalid"
sign client2 "/O=ferrokeeper/OU=test/CN=client2" ca.pem ca.key "$client2_ext"
sign admin "/DC=org/DC=example/O=Acme, Inc./OU=ops\\+dev/CN= admin;#1 /emailAddress=admin@example.org" \
    ca.pem ca.key "$client_ext"
sign expired "/O=ferrokeeper/OU=test/CN=expired" ca.pem ca.key "$client_ext" 20200101000000Z 20200102000000Z
sign untrusted "/CN=untrusted" rogue-ca.pem rogue-ca.key "$client_ext"

cat server.crt server.key > server.pem
cat otherhost.crt otherhost.key > otherhost.pem
cat client.crt client.key > client.pem
cp ca.pem truststore.pem
openssl pkcs12 -export -in server.crt -inkey server.key -certfile ca.pem -name server \
    -passout "pass:$password" -out server.p12
openssl pkcs12 -export -in client.crt -inkey client.key -certfile ca.pem -name client \
    -passout "pass:$password" -out client.p12
rm -f truststore.p12
if command -v keytool >/dev/null 2>&1; then
    keytool -importcert -noprompt -alias ca -file ca.pem -keystore truststore.p12 \
        -storetype PKCS12 -storepass "$password" >/dev/null 2>&1
else
    echo "make-test-certs: keytool not found, truststore.p12 not made" >&2
fi
rm -f ./*.srl
echo "make-test-certs: certificates in $(pwd)"
