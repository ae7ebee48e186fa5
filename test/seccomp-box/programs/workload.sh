# An ordinary shell script: background jobs, pipes, files in /tmp, a child shell.
echo "hello from sh"
for i in 1 2 3 4; do (echo "job $i" > /tmp/sh-job-$i) & done
wait
cat /tmp/sh-job-* | sort | tr '\n' ' ' | sed 's/ $//'
echo
echo "written in /tmp" > /tmp/sh-file.txt
echo "file $(cat /tmp/sh-file.txt)"
echo "pipe $(echo child via pipe | /bin/sh -c 'cat')"
/bin/sh -c 'exit 4'; echo "child exit $?"
