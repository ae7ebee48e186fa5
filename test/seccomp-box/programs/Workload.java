// An ordinary Java program: threads, file I/O in /tmp, a child process through a pipe.
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;

public class Workload {
  public static void main(String[] args) throws Exception {
    System.out.println("hello from Java");
    AtomicLong total = new AtomicLong();
    Thread[] ts = new Thread[4];
    for (int i = 0; i < 4; i++) {
      final int n = i;
      ts[i] = new Thread(() -> {
        long s = 0;
        for (long k = 1; k <= 1000; k++) s += k * (n + 1);
        total.addAndGet(s);
      });
      ts[i].start();
    }
    for (Thread t : ts) t.join();
    System.out.println("threads " + total.get());
    Path p = Path.of("/tmp/java-file.txt");
    Files.writeString(p, "written in /tmp\n");
    System.out.print("file " + Files.readString(p));
    Process c = new ProcessBuilder("/bin/echo", "child via pipe").start();
    String out = new String(c.getInputStream().readAllBytes());
    System.out.print("pipe " + out);
    System.out.println("exit " + c.waitFor());
  }
}
