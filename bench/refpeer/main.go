// Command refpeer: the reference Go peer's networking core (its pkg/chat, pkg/discovery,
// pkg/logger and internal/peer, built from a checkout by bench/reference.py) behind a
// stdin/stdout face, for `python -m bench --only reference`.  It is OUR code (the bench's
// driver); the reference's own code is never copied into this repository.
//
// stdin: every line is said (ChatService.SendMessage), as its UI does with a typed line.
// stdout: "- listening on port P" once, "- linked N" when the number of connected peers
// changes, and "<nick> text" for every chat line that reaches its UI channel, its own
// included: ChatService.SendMessage puts our own line on that channel too ("Our own message
// appears in our UI too"), so its UI shows it, as our line face echoes the lines it says.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"p2pchat/pkg/chat"
	"p2pchat/pkg/logger"
)

func main() {
	username := flag.String("username", "", "nick")
	port := flag.Int("port", 0, "TCP port")
	multicast := flag.String("multicast", "", "multicast group:port")
	flag.Parse()
	if *username == "" || *port == 0 || *multicast == "" {
		fmt.Fprintln(os.Stderr, "refpeer: -username, -port and -multicast are needed")
		os.Exit(2)
	}
	if path := os.Getenv("REFPEER_LOG"); path != "" {
		logger.ToFile(path) // the reference's own log, for a look by hand
	} else {
		logger.Silent()
	}
	peerID := fmt.Sprintf("%s_%d", *username, time.Now().UnixNano()%1000)
	service, err := chat.NewChatService(peerID, *username, *port, *multicast)
	if err != nil {
		fmt.Fprintf(os.Stderr, "refpeer: %v\n", err)
		os.Exit(1)
	}
	if err := service.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "refpeer: %v\n", err)
		os.Exit(1)
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	var mu sync.Mutex
	emit := func(line string) {
		mu.Lock()
		out.WriteString(line)
		mu.Unlock()
	}
	flush := func() {
		mu.Lock()
		out.Flush()
		mu.Unlock()
	}
	emit(fmt.Sprintf("- listening on port %d\n", *port))
	flush()
	messages := service.GetMessages()
	go func() { // the UI's side of its channel, as fast as a pipe takes it
		for {
			msg, ok := <-messages
			if !ok {
				flush()
				return
			}
			if msg.Type == chat.MessageTypeChat {
				emit("<" + msg.Username + "> " + msg.Content + "\n")
			}
			if len(messages) == 0 {
				flush()
			}
		}
	}()
	go func() { // links, polled as its UI does
		last := -1
		for {
			n := service.GetStatus().ConnectedPeers
			if n != last {
				last = n
				emit(fmt.Sprintf("- linked %d\n", n))
				flush()
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<16), 1<<16)
	for in.Scan() {
		if text := in.Text(); text != "" {
			service.SendMessage(text)
		}
	}
	service.Stop()
	flush()
}
