"""The actions: one function per thing a person does or reads, shared by REST and ``/ws``.

    threads   list, create, a thread's page, its messages, one message, its versions and proofs
    writes    post, edit, delete, spec submit and vote, divest, withdraw, ask
    inbox     follow, read marks, notifications since an id, marking them read, people completion
    search    search by words and meaning

Each takes the server's ``Context`` (context.py) and the caller's address, reads one snapshot,
decides who may know what by ``Thread.readable_by`` (the one rule), and refuses with a
``Refusal`` whose code is in ``refusals.REFUSALS``. The transports parse, call, answer."""
