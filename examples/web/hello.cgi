#!/bin/sh
# A CGI endpoint: busybox httpd runs it for /cgi-bin/hello.
printf 'Content-Type: text/plain\r\n\r\n'
echo "$GREETING (container $(hostname))"
